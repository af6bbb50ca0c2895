"""The judge check (prefbias.evaluation.judge_check): per hand-made row, does the judge score a
relevant answer above an off-topic one? Arithmetic on hand numbers, bad input, and the real
API path against a local OpenAI-compatible server; the real SmolLM2 judge on the demo's set is
in tests/test_real_model.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefbias.evaluation.judge_check import mean_score, read_pairs, run_judge_check, win
from prefbias.io import DataError, read_json, read_jsonl, write_jsonl

try:
    from tests.support.openai_server import OpenAIStubServer
except ModuleNotFoundError:  # tests/ itself is on sys.path
    from support.openai_server import OpenAIStubServer

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/data/judge_check/pairs.jsonl"
KEY_ENV = "PREFBIAS_TEST_CHECK_KEY"


def test_win_and_mean_on_hand_numbers():
    assert mean_score({"a": 4, "b": 2, "c": None}) == 3.0 and mean_score({"a": None}) is None
    assert (win(3.0, 2.0), win(2.0, 2.0), win(1.0, 2.0), win(None, 2.0)) == \
        (1.0, 0.5, 0.0, None)


def test_the_demo_set_is_hand_made_in_its_schema():
    rows = read_pairs(FIXTURE)
    assert len(rows) == 32 and len({r["id"] for r in rows}) == 32
    assert [r["split"] for r in rows].count("held_out") == 20
    assert all(r["relevant"] != r["off_topic"] for r in rows)


def test_bad_row_names_file_line_and_field(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    write_jsonl(bad, [{"id": "a", "prompt": "q", "relevant": "r", "off_topic": "o"},
                      {"id": "b", "prompt": "q", "relevant": ""}])
    with pytest.raises(DataError, match=r"pairs.jsonl.*line 2.*relevant"):
        read_pairs(bad)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="no judge-check rows"):
        read_pairs(tmp_path / "empty.jsonl")


def test_api_judge_check_counts_wins_ties_and_losses(tmp_path, paper_config, monkeypatch):
    """Through the real API path (parse mode, the paper's judge prompt): the stub judge gives a
    response 5s when it says 'good', 3s for 'tie', 1s otherwise - rows win, tie and lose."""
    monkeypatch.setenv(KEY_ENV, "sk-test-check")
    dims = paper_config["judge"]["dimensions"]

    def handler(body):
        text = body["messages"][0]["content"]
        s = 5 if "GOOD" in text else 3 if "TIE" in text else 1
        return json.dumps({**dict.fromkeys(dims, s), "reasons": dict.fromkeys(dims, "r")})

    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [{"id": "w", "prompt": "q1", "relevant": "GOOD", "off_topic": "bad"},
                        {"id": "t", "prompt": "q2", "relevant": "TIE", "off_topic": "TIE"},
                        {"id": "l", "prompt": "q3", "relevant": "bad", "off_topic": "GOOD"},
                        {"id": "w2", "prompt": "q4", "relevant": "GOOD", "off_topic": "TIE"}])
    spec = {**paper_config["judge"], "api_key_env": KEY_ENV, "max_retries": 0,
            "bootstrap": {"n": 200, "seed": 0, "ci": 0.95}}
    with OpenAIStubServer(handler=handler) as srv:
        spec["base_url"] = srv.base_url
        summ = run_judge_check(spec, pairs, tmp_path / "rows.jsonl", tmp_path / "s.json",
                               cache_dir=tmp_path / "cache")
        assert srv.n_requests == 8  # both answers of every row
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert [r["win"] for r in rows] == [1.0, 0.5, 0.0, 1.0]
    assert [r["relevant_mean"] for r in rows] == [5.0, 3.0, 1.0, 5.0]
    assert summ == read_json(tmp_path / "s.json")
    assert summ["win_rate"]["mean"] == pytest.approx(2.5 / 4) and summ["win_rate"]["n"] == 4
    assert summ["relevant"]["mean"] == pytest.approx(3.5)
    assert summ["off_topic"]["mean"] == pytest.approx(3.0)  # 1, 3, 5, 3
    assert summ["judge"] == "gpt-4o-mini" and summ["score_mode"] == "parse"


def test_table_without_a_check_set_says_so(tmp_path, paper_config):
    from prefbias import plan
    from prefbias.report.build import build_table

    assert paper_config["judge"]["check_set"] is None  # the paper has no judge check
    spec = plan.report_spec(paper_config, "judge_check")
    assert spec["rows"] == [] and plan.report_inputs(paper_config, "judge_check") == []
    build_table("judge_check", tmp_path, spec, tmp_path / "judge_check")
    assert "No judge check set configured" in (tmp_path / "judge_check.md").read_text()
