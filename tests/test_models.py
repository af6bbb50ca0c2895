"""Tiny model builder and model loading."""

from __future__ import annotations

import json

import pytest

from prefbias.models.load import ModelLoadError, fetch_model, load_causal_lm, load_tokenizer
from prefbias.models.tiny import build_tiny_model, corpus_from_files

TEXTS = ["What is the capital of France? The answer is (B) Paris.",
         "I think the answer is 42 but I'm really not sure."] * 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "tiny"
    build_tiny_model(out, {"seed": 3, "vocab_size": 400}, TEXTS)
    return out


def test_tokenizer_round_trips_and_both_load_paths_agree(tiny_dir):
    from transformers import PreTrainedTokenizerFast

    auto = load_tokenizer(tiny_dir)
    fast = PreTrainedTokenizerFast.from_pretrained(tiny_dir)
    text = "Hello  world!\n\nThe answer is (C) 1234 café"
    assert auto(text).input_ids == fast(text).input_ids
    assert auto.decode(auto(text).input_ids) == text
    rendered = auto.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    for digit in "12345":
        assert len(auto.encode(digit)) == 1


def test_tiny_model_is_deterministic_and_generates(tmp_path, tiny_dir):
    import torch

    again = tmp_path / "again"
    build_tiny_model(again, {"seed": 3, "vocab_size": 400}, TEXTS)
    a = load_causal_lm(tiny_dir, device="cpu")
    b = load_causal_lm(again, device="cpu")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    tok = load_tokenizer(tiny_dir)
    ids = tok("hello", return_tensors="pt")
    out = a.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.input_ids.shape[1] + 4 or tok.eos_token_id in out[0].tolist()
    meta = json.loads((tiny_dir / "prefbias_model.json").read_text())
    assert meta["source"] == "tiny" and meta["parameters"] > 0


def test_reward_model_builds(tmp_path):
    from prefbias.models.load import load_reward_model

    out = tmp_path / "rm"
    build_tiny_model(out, {"seed": 1, "vocab_size": 400, "task": "reward"}, TEXTS)
    rm = load_reward_model(out, device="cpu")
    tok = load_tokenizer(out)
    assert rm(**tok("hello", return_tensors="pt")).logits.shape == (1, 1)


def test_missing_model_dir_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nope")):
        load_causal_lm(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_tokenizer(tmp_path / "empty")


def test_fetch_model_from_local_snapshot(tmp_path, tiny_dir):
    out = tmp_path / "fetched"
    fetch_model({"repo": str(tiny_dir), "revision": "local"}, out)
    assert (out / "config.json").exists()
    assert json.loads((out / "prefbias_model.json").read_text())["repo"] == str(tiny_dir)
    load_tokenizer(out)


def test_fetch_failure_leaves_nothing(tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    out = tmp_path / "out"
    with pytest.raises(ModelLoadError):
        fetch_model({"repo": str(bad), "revision": "x"}, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_corpus_from_files(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "hi there"}]}\n')
    assert list(corpus_from_files([f])) == ["user", "hi there"]
