"""sft-data: single-turn, length-filtered SFT set, with a byte-level test tokenizer.

The test tokenizer maps every UTF-8 byte to one token and each ChatML marker to one token, so
token counts are exact: prompt = 1 + len("user") + 1 + bytes(content) + 1 + 1 + 1 + 9 + 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefbias.data.sft import build_sft, stats_path
from prefbias.io import DataError

FIX = Path(__file__).parent / "fixtures" / "data" / "smol_smoltalk"
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tk = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.chat_template = CHATML
    out = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tok(tokenizer_dir):
    from prefbias.data.sft import load_tokenizer

    return load_tokenizer(tokenizer_dir)


def prompt_len(user: str, system: str | None = None) -> int:
    n = 1 + 4 + 1 + len(user.encode()) + 2 + 1 + 9 + 1
    if system is not None:
        n += 1 + 6 + 1 + len(system.encode()) + 2
    return n


def test_fixture_train_split(tmp_path, tokenizer_dir):
    out = tmp_path / "data" / "sft" / "train.jsonl"
    stats = build_sft(FIX / "train.jsonl", tokenizer_dir, out, max_prompt_tokens=256,
                      max_completion_tokens=256)
    assert stats_path(out) == tmp_path / "data" / "sft" / "train.stats.json"
    assert json.loads(stats_path(out).read_text()) == stats
    assert stats["total"] == 40
    # line 25 (4 turns) is cut to its first exchange instead of being dropped
    assert stats["dropped"] == {"prompt_too_long": 1, "completion_too_long": 1}
    assert (stats["kept"], stats["single_turn"], stats["transformed"]) == (38, 37, 1)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 38
    raw = {i + 1: json.loads(x) for i, x in enumerate((FIX / "train.jsonl").read_text()
                                                       .splitlines())}
    cut = [r for r in rows if r["transformed"]]
    assert [r["id"] for r in cut] == ["train-25"]
    assert cut[0]["messages"] == [{"role": "user", "content": "I need a name for my dog."},
                                  {"role": "assistant", "content": "What kind of dog is it?"}]
    assert (cut[0]["prompt_tokens"], cut[0]["completion_tokens"]) == (44, 23)  # by hand
    for r in rows:
        assert set(r) == {"id", "messages", "source", "prompt_tokens", "completion_tokens",
                          "transformed"}
        line = int(r["id"].rsplit("-", 1)[1])
        src = raw[line]["messages"] if not r["transformed"] else r["messages"]
        assert r["messages"] == src and r["source"] == raw[line]["source"]
        sys_msg = src[0]["content"] if src[0]["role"] == "system" else None
        assert r["prompt_tokens"] == prompt_len(src[-2]["content"], sys_msg)
        assert r["completion_tokens"] == len(src[-1]["content"].encode())
    assert any(r["messages"][0]["role"] == "system" for r in rows)


def test_limits_are_inclusive(tmp_path, tok):
    src = tmp_path / "in.jsonl"
    rows = [{"messages": [{"role": "user", "content": "abc"},
                          {"role": "assistant", "content": "12345"}], "source": "s"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = prompt_len("abc")
    assert build_sft(src, tok, tmp_path / "a.jsonl", max_prompt_tokens=n,
                     max_completion_tokens=5)["kept"] == 1
    with pytest.raises(DataError, match="no example kept"):
        build_sft(src, tok, tmp_path / "b.jsonl", max_prompt_tokens=n - 1,
                  max_completion_tokens=5)
    assert not (tmp_path / "b.jsonl").exists() and not (tmp_path / "b.stats.json").exists()


def test_multi_turn_rows_become_their_first_exchange(tmp_path, tok, caplog):
    """System + 3 exchanges -> (system, user 1, assistant 1); a multi-turn row whose first reply
    is too long is dropped as completion_too_long, not as multi-turn."""
    sys_msg = {"role": "system", "content": "Be brief."}
    conv = [sys_msg, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"},
            {"role": "user", "content": "u3"}, {"role": "assistant", "content": "a3"}]
    long_first = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 9},
                  {"role": "user", "content": "q2"}, {"role": "assistant", "content": "y"}]
    single = [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "12345"}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"messages": m, "source": "s"}) + "\n"
                           for m in (conv, long_first, single)))
    caplog.set_level("INFO")
    stats = build_sft(src, tok, tmp_path / "o.jsonl", max_prompt_tokens=256,
                      max_completion_tokens=5)
    assert (stats["total"], stats["kept"], stats["single_turn"], stats["transformed"]) == \
        (3, 2, 1, 1)
    assert stats["dropped"] == {"prompt_too_long": 0, "completion_too_long": 1}
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[0]["messages"] == conv[:3] and rows[0]["transformed"] is True
    assert rows[0]["prompt_tokens"] == prompt_len("u1", "Be brief.")
    assert rows[1]["messages"] == single and rows[1]["transformed"] is False
    assert "transformed to their first exchange 1" in caplog.text


def test_empty_input_is_an_error(tmp_path, tok):
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    with pytest.raises(DataError, match="empty.jsonl.*no rows"):
        build_sft(src, tok, tmp_path / "o.jsonl", max_prompt_tokens=256,
                  max_completion_tokens=5)


GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        "source": "s"}


@pytest.mark.parametrize("bad, field", [
    ("not json", None),
    (json.dumps({"source": "s"}), "messages"),
    (json.dumps({"messages": {"role": "user"}}), "messages"),
    (json.dumps({"messages": []}), "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "a"}]}), "messages[0].role"),
    (json.dumps({"messages": [{"role": "assistant", "content": "a"},
                              {"role": "user", "content": "b"}]}), "messages[0].role"),
    (json.dumps({"messages": [{"role": "system", "content": "s"},
                              {"role": "system", "content": "b"}]}), "messages[1].role"),
    (json.dumps({"messages": [{"role": "user", "content": "   "},
                              {"role": "assistant", "content": "b"}]}), "messages[0].content"),
    (json.dumps({"messages": [{"role": "user", "content": ["a"]},
                              {"role": "assistant", "content": "b"}]}), "messages[0].content"),
    (json.dumps({"messages": [{"role": "tool", "content": "a"},
                              {"role": "assistant", "content": "b"}]}), "messages[0].role"),
])
def test_bad_rows(tmp_path, tok, bad, field):
    src = tmp_path / "raw.jsonl"
    src.write_text(json.dumps(GOOD) + "\n\n" + bad + "\n")
    out = tmp_path / "sft" / "train.jsonl"
    with pytest.raises(DataError) as e:
        build_sft(src, tok, out, max_prompt_tokens=100, max_completion_tokens=100)
    assert e.value.line == 3 and e.value.field == field and "raw.jsonl" in str(e.value)
    assert not out.exists() and not stats_path(out).exists()
