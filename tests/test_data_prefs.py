"""Preference-pair normalisation (UltraFeedback, sharegpt dpo_mix_en) and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefbias.data.prefs import build_prefs
from prefbias.io import DataError

FIX = Path(__file__).parent / "fixtures" / "data"


def _read(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()]


def test_ultrafeedback_fixture(tmp_path):
    out = tmp_path / "prefs" / "ultrafeedback" / "train.jsonl"
    assert build_prefs("ultrafeedback", FIX / "ultrafeedback" / "train_prefs.jsonl", out) == 24
    rows = _read(out)
    raw = _read(FIX / "ultrafeedback" / "train_prefs.jsonl")
    for r, src in zip(rows, raw, strict=True):
        assert r["prompt"] == [{"role": "user", "content": src["prompt"]}]
        assert r["chosen"] == src["chosen"][-1]["content"]
        assert r["rejected"] == src["rejected"][-1]["content"]
        assert r["id"] == src["prompt_id"] and r["source"] == "ultrafeedback"
        assert r["score_chosen"] == src["score_chosen"]


def test_sharegpt_fixture(tmp_path):
    out = tmp_path / "dpo.jsonl"
    n = build_prefs("sharegpt", FIX / "dpo_mix_en" / "sharegpt.jsonl", out)
    rows = _read(out)
    assert n == len(rows) == 21
    assert rows[1]["prompt"][0]["role"] == "system"
    last = rows[-1]
    assert [t["role"] for t in last["prompt"]] == ["system", "user", "assistant", "user"]
    assert last["chosen"].startswith("Boil it for about") and last["source"] == "dpo_mix_en"
    for r in rows:
        assert r["prompt"][-1]["role"] == "user"
        assert isinstance(r["chosen"], str) and isinstance(r["rejected"], str)


def test_pinned_dpo_mix_en_is_alpaca_ranking_and_auto_detected(tmp_path):
    """The fixture is in the schema of the pinned revision (alpaca-style ranking columns); the
    pipeline's kind 'llamafactory' detects it from the columns and gives the same pairs as the
    sharegpt rendering of the same rows; forcing 'sharegpt' on it fails naming the column."""
    raw = _read(FIX / "dpo_mix_en" / "train.jsonl")
    assert all(set(r) == {"system", "history", "prompt", "answer"} for r in raw)
    assert any(r["history"] for r in raw) and any(r["system"] for r in raw)
    alpaca = tmp_path / "a.jsonl"
    sharegpt = tmp_path / "s.jsonl"
    assert build_prefs("llamafactory", FIX / "dpo_mix_en" / "train.jsonl", alpaca) == 21
    assert build_prefs("llamafactory", FIX / "dpo_mix_en" / "sharegpt.jsonl", sharegpt) == 21
    assert _read(alpaca) == _read(sharegpt)
    last = _read(alpaca)[-1]
    assert last["prompt"] == [
        {"role": "system", "content": "You are a patient cooking assistant."},
        {"role": "user", "content": "How long should I boil an egg?"},
        {"role": "assistant", "content": "Do you want it soft or hard boiled?"},
        {"role": "user", "content": "Hard boiled, please."}]
    assert last["chosen"] == raw[-1]["answer"][0] and last["rejected"] == raw[-1]["answer"][1]
    with pytest.raises(DataError) as e:
        build_prefs("sharegpt", FIX / "dpo_mix_en" / "train.jsonl", tmp_path / "x.jsonl")
    assert e.value.line == 1 and e.value.field == "conversations"


AL_OK = {"system": "", "history": [], "prompt": "hi", "answer": ["hello", "go away"]}


@pytest.mark.parametrize("changes, field", [
    ({"answer": ["only one"]}, "answer"),
    ({"answer": "hello"}, "answer"),
    ({"answer": ["good", ""]}, "answer[1]"),
    ({"prompt": ""}, "prompt"),
    ({"history": [["q"]]}, "history[0]"),
    ({"history": [["q", 3]]}, "history[0][1]"),
    ({"history": "q a"}, "history"),
    ({"system": 5}, "system"),
])
def test_alpaca_bad_rows(tmp_path, changes, field):
    src = tmp_path / "al.jsonl"
    src.write_text(json.dumps(AL_OK) + "\n" + json.dumps({**AL_OK, **changes}) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as e:
        build_prefs("llamafactory", src, out)
    assert e.value.line == 2 and e.value.field == field and "al.jsonl" in str(e.value)
    assert not out.exists()


def test_llamafactory_rejects_unknown_and_mixed_schemas(tmp_path):
    src = tmp_path / "mix.jsonl"
    src.write_text(json.dumps(AL_OK) + "\n" + json.dumps(SG_OK) + "\n")
    with pytest.raises(DataError, match="sharegpt schema.*line 1 is in the alpaca") as e:
        build_prefs("llamafactory", src, tmp_path / "o.jsonl")
    assert e.value.line == 2
    src.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    with pytest.raises(DataError, match="not a LLaMA-Factory ranking row.*instruction"):
        build_prefs("llamafactory", src, tmp_path / "o.jsonl")


UF_OK = {"prompt": "p", "prompt_id": "x",
         "chosen": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "good"}],
         "rejected": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "bad"}],
         "score_chosen": 8.0, "score_rejected": 2.0}


def _uf(**changes):
    row = json.loads(json.dumps(UF_OK))
    row.update(changes)
    return json.dumps(row)


@pytest.mark.parametrize("bad, field", [
    ("[1, 2]", None),
    ('{"prompt": "p"', None),
    (_uf(chosen=None), "chosen"),
    (_uf(chosen="text"), "chosen"),
    (_uf(chosen=[]), "chosen"),
    (_uf(rejected=[{"role": "user", "content": "OTHER"},
                   {"role": "assistant", "content": "bad"}]), "rejected"),
    (_uf(chosen=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "p"}]),
     "chosen[0].role"),
    (_uf(chosen=[{"role": "user", "content": "p"}]), "chosen[0].role"),
    (_uf(chosen=[{"role": "user", "content": "p"}, {"role": "assistant"}]),
     "chosen[1].content"),
    (_uf(score_chosen="high"), "score_chosen"),
])
def test_ultrafeedback_bad_rows(tmp_path, bad, field):
    src = tmp_path / "uf.jsonl"
    src.write_text(_uf() + "\n" + bad + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as e:
        build_prefs("ultrafeedback", src, out)
    assert e.value.line == 2 and e.value.field == field and "uf.jsonl" in str(e.value)
    assert not out.exists()


SG_OK = {"conversations": [{"from": "human", "value": "hi"}],
         "chosen": {"from": "gpt", "value": "hello"}, "rejected": {"from": "gpt", "value": "go"}}


@pytest.mark.parametrize("changes, field", [
    ({"conversations": []}, "conversations"),
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
     "conversations[1].role"),
    ({"conversations": [{"from": "gpt", "value": "a"}]}, "conversations[0].role"),
    ({"conversations": [{"from": "bot", "value": "a"}]}, "conversations[0].from"),
    ({"conversations": [{"from": "human", "value": ""}]}, "conversations[0].value"),
    ({"chosen": "hello"}, "chosen"),
    ({"rejected": {"from": "human", "value": "x"}}, "rejected.from"),
    ({"rejected": None}, "rejected"),
])
def test_sharegpt_bad_rows(tmp_path, changes, field):
    row = {**SG_OK, **changes}
    src = tmp_path / "sg.jsonl"
    src.write_text(json.dumps(SG_OK) + "\n" + json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as e:
        build_prefs("sharegpt", src, out)
    assert e.value.line == 2 and e.value.field == field
    assert not out.exists()
