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
    n = build_prefs("sharegpt", FIX / "dpo_mix_en" / "train.jsonl", out)
    rows = _read(out)
    assert n == len(rows) == 21
    assert rows[1]["prompt"][0]["role"] == "system"
    last = rows[-1]
    assert [t["role"] for t in last["prompt"]] == ["system", "user", "assistant", "user"]
    assert last["chosen"].startswith("Boil it for about") and last["source"] == "dpo_mix_en"
    for r in rows:
        assert r["prompt"][-1]["role"] == "user"
        assert isinstance(r["chosen"], str) and isinstance(r["rejected"], str)


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
