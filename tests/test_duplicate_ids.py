"""issue 23 items 3 and 6: every stage that keys rows by id rejects a repeated id, naming the file
and both lines (preference sets, reference log-probs, generation prompts, judge inputs, judge
agreement, sycophancy dialogues); an empty generations file is an error, not n=0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prefbias.data.prefs import build_prefs
from prefbias.evaluation.agreement import judge_agreement
from prefbias.evaluation.judge import read_generations, run_judge
from prefbias.generation.base import load_prompts
from prefbias.io import DataError, write_jsonl
from prefbias.train import refs, synthetic
from prefbias.train.batching import read_pairs


def _uf(pid: str, good: str = "good") -> dict:
    return {"prompt": "p", "prompt_id": pid,
            "chosen": [{"role": "user", "content": "p"}, {"role": "assistant", "content": good}],
            "rejected": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "b"}]}


def _dup_message(err, path: Path, line: int, first: int) -> None:
    msg = str(err.value)
    assert str(path) in msg, msg
    assert f"line {line}" in msg and f"line {first}" in msg and "duplicate id" in msg, msg


def test_prefs_rejects_a_repeated_prompt_id(tmp_path):
    src = tmp_path / "uf.jsonl"
    write_jsonl(src, [_uf("a"), _uf("b"), _uf("a", "other")])
    with pytest.raises(DataError) as err:
        build_prefs("ultrafeedback", src, tmp_path / "out.jsonl")
    _dup_message(err, src, 3, 1)
    assert not (tmp_path / "out.jsonl").exists()


def _pairs(n: int) -> list[dict]:
    return synthetic.pref_rows(n, 0)


def test_preference_reader_rejects_repeated_ids(tmp_path):
    rows = _pairs(4)
    rows[3]["id"] = rows[1]["id"]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(DataError) as err:
        read_pairs(path)
    _dup_message(err, path, 4, 2)


def test_reference_logps_refuse_repeated_ids(tmp_path):
    """The issue's case: 24 rows, 23 unique ids; ref-logps stored both, DPO used one's."""
    model = synthetic.build_model(tmp_path / "ref")
    rows = _pairs(24)
    rows[23]["id"] = rows[0]["id"]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(DataError) as err:
        refs.compute(model, path, tmp_path / "refs.pt", max_length=64)
    _dup_message(err, path, 24, 1)
    assert not (tmp_path / "refs.pt").exists()


def test_a_reference_table_with_repeated_ids_is_refused(tmp_path):
    """A table written before the check (or edited) cannot silently keep one of two rows."""
    path = tmp_path / "train.jsonl"
    write_jsonl(path, _pairs(3))
    from prefbias.io import sha256_file

    table = {"format": refs.FORMAT, "ids": ["a", "b", "a"],
             "chosen": torch.zeros(3, dtype=torch.float64),
             "rejected": torch.zeros(3, dtype=torch.float64),
             "data_sha256": sha256_file(path), "model_fingerprint": "x", "max_length": 64,
             "long_prompts": "drop"}
    torch.save(table, tmp_path / "refs.pt")
    with pytest.raises(refs.StaleReferenceError, match=r"duplicate id 'a' \(rows 1 and 3"):
        refs.load(tmp_path / "refs.pt", data_path=path, max_length=64)


def _gen(i: int, rid: str | None = None) -> dict:
    return {"id": rid or f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}],
            "response": f"r{i}"}


def test_generation_prompts_reject_repeated_ids(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(path, [{"id": "x", "messages": [{"role": "user", "content": "a"}]},
                       {"id": "y", "messages": [{"role": "user", "content": "b"}]},
                       {"id": "x", "messages": [{"role": "user", "content": "c"}]}])
    with pytest.raises(DataError) as err:
        load_prompts(path)
    _dup_message(err, path, 3, 1)


def test_judge_input_with_repeated_ids_is_an_error(tmp_path):
    path = tmp_path / "gen.jsonl"
    write_jsonl(path, [_gen(0), _gen(1), _gen(2, "p1")])
    with pytest.raises(DataError) as err:
        read_generations(path)
    _dup_message(err, path, 3, 2)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_generations_file_is_an_error(tmp_path, paper_config, content):
    path = tmp_path / "gen.jsonl"
    path.write_text(content)
    spec = {**paper_config["judge"], "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "PREFBIAS_TEST_UNSET_KEY"}
    with pytest.raises(DataError, match="no generations: the file is empty"):
        run_judge(spec, path, tmp_path / "o.jsonl", tmp_path / "s.json")
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "s.json").exists()


def test_judge_agreement_rejects_repeated_ids(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, [{"id": "p0", "scores": {"h": 3}}, {"id": "p1", "scores": {"h": 4}}])
    write_jsonl(b, [{"id": "p0", "scores": {"h": 3}}, {"id": "p0", "scores": {"h": 1}}])
    with pytest.raises(DataError) as err:
        judge_agreement([a], [b], ["h"], tmp_path / "agree.json")
    _dup_message(err, b, 2, 1)


@pytest.mark.parametrize("where", ["data", "dialogues"])
def test_sycophancy_rows_and_dialogues_reject_repeated_ids(tmp_path, where):
    from prefbias.evaluation.sycophancy import grade_task

    data, d = tmp_path / "answer.jsonl", tmp_path / "dialogues.jsonl"
    ids = {"data": ("q1", "q2", "q1"), "dialogues": ("q1", "q2", "q3")}[where]
    write_jsonl(data, [{"id": i, "dataset": "trivia_qa", "template": "{question}",
                        "messages": [{"role": "user", "content": "?"}]} for i in ids])
    write_jsonl(d, [{"id": i, "response": "a"} for i in ("q1", "q2", "q1")])
    with pytest.raises(DataError) as err:
        grade_task("answer", {"grader": {"kind": "match"}}, data, d, tmp_path / "rows.jsonl",
                   tmp_path / "scores.json")
    _dup_message(err, data if where == "data" else d, 3, 1)
