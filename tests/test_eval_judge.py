"""LLM judge against a real local OpenAI-compatible HTTP server (fault injection), plus the
local prob-weighted judge on a tiny random model."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from prefbias.evaluation.judge import (
    REASK,
    ApiError,
    ApiKeyError,
    HFJudge,
    JudgeParseError,
    fill_template,
    parse_judge_answer,
    resolve_judge_spec,
    run_judge,
    yes_no_prompts,
    yes_no_score,
)
from prefbias.io import read_json, read_jsonl, write_jsonl

try:
    from tests.support.openai_server import Fault, OpenAIStubServer, token_logprobs
except ModuleNotFoundError:  # tests/ itself is on sys.path (pytest rootdir-conftest insertion)
    from support.openai_server import Fault, OpenAIStubServer, token_logprobs

DIMS = ["helpfulness", "relevance", "factuality", "harmlessness"]
KEY_ENV = "PREFBIAS_TEST_JUDGE_KEY"
SECRET = "sk-test-SECRET-3f9a1c77e2"


def good_answer(scores=(4, 3, 5, 2), fenced=True) -> str:
    obj = {d: s for d, s in zip(DIMS, scores, strict=True)}
    obj["reasons"] = {d: f"reason for {d}" for d in DIMS}
    body = json.dumps(obj, indent=2)
    return f"```json\n{body}\n```" if fenced else body


def handler(body: dict) -> str:
    last = body["messages"][-1]["content"]
    first = body["messages"][0]["content"]
    if "ALWAYS_BAD" in first:
        return "I think it is pretty good overall, 4/5."
    if "BAD_ONCE" in first and not last.startswith("Your previous reply"):
        return "{ not json"
    return good_answer()


@pytest.fixture()
def spec(paper_config) -> dict:
    s = {k: v for k, v in paper_config["judge"].items() if k != "second_judge"}
    # timeout generous enough that only an injected Fault("timeout") ever times out, even on a
    # loaded CI machine (a 0.5 s timeout once turned a slow normal answer into an extra request)
    s.update(api_key_env=KEY_ENV, max_retries=4, retry_backoff_s=0.01, timeout_s=5.0,
             max_concurrency=2, requests_per_minute=None, max_parse_retries=2,
             bootstrap={"n": 200, "seed": 0, "ci": 0.95})
    return s


def make_generations(path: Path, responses: list[str]) -> Path:
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}?"}],
             "response": r, "finish_reason": "stop", "model": "m"}
            for i, r in enumerate(responses)]
    write_jsonl(path, rows)
    return path


def test_prompt_is_b1_verbatim(paper_config):
    prompt = paper_config["judge"]["prompt"]
    text = fill_template(prompt, prompt="What is {x}?", response="It is {prompt}.")
    assert text.startswith("You are an expert judge evaluating a 0.5B parameter model response")
    assert "What is {x}?" in text and "It is {prompt}." in text
    assert '"helpfulness": int,' in text  # literal JSON braces survive


def test_parse_fences_and_schema():
    scores, reasons = parse_judge_answer(good_answer(), DIMS)
    assert scores == dict(zip(DIMS, (4, 3, 5, 2), strict=True))
    assert reasons["factuality"] == "reason for factuality"
    assert parse_judge_answer("Sure! " + good_answer(fenced=False), DIMS)[0]["relevance"] == 3
    for bad in [good_answer((4, 3, 6, 2)), good_answer((4, 3, 0, 2)), "no json here",
                json.dumps({d: 3 for d in DIMS}),  # reasons missing
                good_answer().replace('"relevance": 3', '"relevance": "3"')]:
        with pytest.raises(JudgeParseError):
            parse_judge_answer(bad, DIMS)


def test_retries_then_cache_hit_on_rerun(tmp_path, spec, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    gens = make_generations(tmp_path / "g.jsonl", ["a", "b", "c"])
    faults = ["429", "500", Fault("timeout", sleep_s=10.0), "malformed", "503"]
    with OpenAIStubServer(handler=handler, faults=faults, api_key=SECRET) as srv:
        spec["base_url"] = srv.base_url
        summ = run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json",
                         cache_dir=tmp_path / "cache")
        assert srv.pending_faults == 0
        assert srv.n_requests == 3 + len(faults)
        assert srv.max_in_flight <= 2
        rows = read_jsonl(tmp_path / "o.jsonl")
        assert [r["scores"]["helpfulness"] for r in rows] == [4, 4, 4]
        assert not any(r["missing"] for r in rows)
        assert summ["factuality"]["mean"] == 5 and summ["factuality"]["n"] == 3
        srv.reset_counts()
        run_judge(spec, gens, tmp_path / "o2.jsonl", tmp_path / "s2.json",
                  cache_dir=tmp_path / "cache")
        assert srv.n_requests == 0  # everything from the disk cache
    assert read_jsonl(tmp_path / "o2.jsonl") == rows
    assert read_json(tmp_path / "s2.json") == read_json(tmp_path / "s.json")


def test_unparseable_is_reasked_then_counted_missing(tmp_path, spec, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    gens = make_generations(tmp_path / "g.jsonl", ["fine", "ALWAYS_BAD", "BAD_ONCE"])
    with OpenAIStubServer(handler=handler) as srv:
        spec["base_url"] = srv.base_url
        summ = run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json",
                         cache_dir=tmp_path / "cache")
        # fine: 1, ALWAYS_BAD: 1 + max_parse_retries, BAD_ONCE: 2
        assert srv.n_requests == 1 + 3 + 2
        reask = [b for b in srv.bodies if len(b["messages"]) == 3]
        assert all(b["messages"][2]["content"].startswith(REASK[:30]) for b in reask)
    rows = {r["id"]: r for r in read_jsonl(tmp_path / "o.jsonl")}
    assert len(rows) == 3  # never dropped
    assert rows["p1"]["missing"] and rows["p1"]["scores"] == dict.fromkeys(DIMS)
    assert rows["p1"]["attempts"] == 3 and rows["p1"]["error"]
    assert not rows["p2"]["missing"] and rows["p2"]["attempts"] == 2
    for d in DIMS:
        assert summ[d]["n"] == 2 and summ[d]["n_missing"] == 1


def test_missing_key_fails_before_any_request(tmp_path, spec, monkeypatch, caplog):
    monkeypatch.delenv(KEY_ENV, raising=False)
    gens = make_generations(tmp_path / "g.jsonl", ["a"])
    with OpenAIStubServer(handler=handler) as srv:
        spec["base_url"] = srv.base_url
        with pytest.raises(ApiKeyError, match=KEY_ENV):
            run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json")
        from prefbias.cli import main

        with caplog.at_level(logging.ERROR):
            rc = main(["judge", "--spec", json.dumps(spec), "--generations", str(gens),
                       "--out", str(tmp_path / "o.jsonl"), "--summary", str(tmp_path / "s.json")])
        assert rc == 1 and KEY_ENV in caplog.text
        assert srv.n_requests == 0
    assert not (tmp_path / "o.jsonl").exists()


def test_error_storm_gives_clear_error_and_keeps_cache(tmp_path, spec, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    spec["max_retries"] = 2
    with OpenAIStubServer(handler=handler) as srv:
        spec["base_url"] = srv.base_url
        run_judge(spec, make_generations(tmp_path / "g1.jsonl", ["a"]), tmp_path / "o1.jsonl",
                  tmp_path / "s1.json", cache_dir=tmp_path / "cache")
    n_cached = len(list((tmp_path / "cache").rglob("*.json")))
    assert n_cached == 1
    gens = make_generations(tmp_path / "g.jsonl", ["a", "b", "c", "d"])
    with OpenAIStubServer(handler=handler, fault_fn=lambda n, body: "500") as srv:
        spec["base_url"] = srv.base_url
        with pytest.raises(ApiError, match=r"giving up .* after 3 attempts.*HTTP 500"):
            run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json",
                      cache_dir=tmp_path / "cache")
        assert 3 <= srv.n_requests <= 3 * 3  # bounded: (max_retries + 1) per uncached row
    assert len(list((tmp_path / "cache").rglob("*.json"))) == n_cached
    assert not (tmp_path / "o.jsonl").exists()


def test_key_never_logged_or_written(tmp_path, spec, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    gens = make_generations(tmp_path / "g.jsonl", ["a", "BAD_ONCE"])
    with caplog.at_level(logging.DEBUG):
        with OpenAIStubServer(handler=handler, faults=["429", "500"], api_key=SECRET) as srv:
            spec["base_url"] = srv.base_url
            run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json",
                      cache_dir=tmp_path / "cache")
        with OpenAIStubServer(handler=handler, api_key="another-key") as srv:  # 401
            spec["base_url"] = srv.base_url
            with pytest.raises(ApiError) as err:
                run_judge(spec, make_generations(tmp_path / "g2.jsonl", ["zzz"]),
                          tmp_path / "o2.jsonl", tmp_path / "s2.json")
            assert srv.n_requests == 1  # 401 is not retried
    assert SECRET not in str(err.value)
    assert "usage" in caplog.text  # tokens and cost were logged
    assert SECRET not in caplog.text
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f


def test_prob_weighted_from_api_logprobs(tmp_path, spec, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    text = good_answer(fenced=False)
    ln = math.log

    def lp_handler(body):
        assert body["logprobs"] is True and body["top_logprobs"] == 20
        toks = []
        for piece in text.replace("\n", "\n\x00").split("\x00"):  # one token per line piece
            for d in DIMS:
                head = f'  "{d}": '
                if piece.startswith(head):
                    toks.append((head, -0.01))
                    digit = piece[len(head)]
                    toks.append((digit, ln(0.5), {digit: ln(0.5), "1": ln(0.25), "x": ln(0.25)}))
                    piece = piece[len(head) + 1:]
                    break
            toks.append((piece, -0.01))
        return {"content": text, "logprobs": token_logprobs(toks)}

    spec["score_mode"] = "prob_weighted"
    with OpenAIStubServer(handler=lp_handler) as srv:
        spec["base_url"] = srv.base_url
        run_judge(spec, make_generations(tmp_path / "g.jsonl", ["a"]), tmp_path / "o.jsonl",
                  tmp_path / "s.json")
    row = read_jsonl(tmp_path / "o.jsonl")[0]
    # 0.5 on the written digit, 0.25 on "1", 0.25 on a non-digit -> renormalised over digits
    for d, s in zip(DIMS, (4, 3, 5, 2), strict=True):
        assert row["scores"][d] == pytest.approx((s * 0.5 + 1 * 0.25) / 0.75)


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory) -> Path:
    from prefbias.models.tiny import build_tiny_model

    corpus = ["You are an expert judge. Rate the response 1 2 3 4 5 helpfulness relevance "
              "factuality harmlessness reasons {\"a\": 1} Yes No yes no"] * 20
    out = tmp_path_factory.mktemp("judge") / "tiny"
    return build_tiny_model(out, {"seed": 7, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                  "num_kv_heads": 1, "intermediate_size": 64,
                                  "vocab_size": 400}, corpus)


def test_prob_weighted_hf_tiny_model(tmp_path, paper_config, tiny_judge_dir):
    spec = {**paper_config["judge"], "backend": "hf", "model": "tiny",
            "score_mode": "prob_weighted", "bootstrap": {"n": 100, "seed": 0, "ci": 0.9}}
    gens = make_generations(tmp_path / "g.jsonl", ["a fine answer", "", "5 5 5 {}"])
    summ = run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json",
                     model_dir=tiny_judge_dir)
    run_judge(spec, gens, tmp_path / "o2.jsonl", tmp_path / "s2.json", model_dir=tiny_judge_dir)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert rows == read_jsonl(tmp_path / "o2.jsonl")  # deterministic
    for r in rows:
        assert not r["missing"]
        for d in DIMS:
            assert 1.0 <= r["scores"][d] <= 5.0 and isinstance(r["scores"][d], float)
            assert 0.0 < r["digit_mass"][d] <= 1.0
    assert set(summ) == set(DIMS) and all(summ[d]["n"] == 3 for d in DIMS)
    # scores differ between dimensions (the distribution is read at each key, not copied)
    assert len({round(rows[0]["scores"][d], 6) for d in DIMS}) > 1


def test_hf_judge_kv_cache_gives_the_full_forward_numbers(paper_config, tiny_judge_dir):
    """prob_weighted reuses the judge prompt's KV cache across dimensions and answers: the
    scores equal those of a full forward pass per dimension."""
    spec = {**paper_config["judge"], "backend": "hf", "score_mode": "prob_weighted"}
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"Question {i}?"}],
             "response": text} for i, text in enumerate(["a fine answer", "5 5 {}", ""])]
    cached = HFJudge(tiny_judge_dir, spec)
    full = HFJudge(tiny_judge_dir, spec)
    full.reuse_cache = False
    for row in rows:
        a, b = cached.score(row), full.score(row)
        for d in DIMS:
            assert a["scores"][d] == pytest.approx(b["scores"][d], abs=1e-4)
            assert a["digit_mass"][d] == pytest.approx(b["digit_mass"][d], rel=1e-3)


def test_hf_judge_bad_model_dir_names_path(tmp_path, paper_config):
    from prefbias.models.load import ModelLoadError

    bad = tmp_path / "no-model-here"
    bad.mkdir()
    with pytest.raises(ModelLoadError, match=str(bad)):
        HFJudge(bad, {**paper_config["judge"], "backend": "hf"})


# ---------------------------------------------------------------------------------------------
# score_mode yes_no: one yes/no question per criterion, score = 1 + 4 P(yes | yes or no)
# ---------------------------------------------------------------------------------------------
YES_NO = {"template": "Request: {prompt}\nResponse: {response}\n\n{question} Answer yes or no.",
          "questions": {d: f"Is the response good on {d}?" for d in DIMS}}


def test_yes_no_score_pools_spellings_and_renormalises():
    ln = math.log
    score, mass = yes_no_score({"Yes": ln(0.3), " yes": ln(0.1), "No": ln(0.2), "The": ln(0.4)})
    assert score == pytest.approx(1 + 4 * 0.4 / 0.6) and mass == pytest.approx(0.6)
    assert yes_no_score({"The": ln(0.9)}) == (None, 0.0)


def test_yes_no_needs_a_question_per_dimension(paper_config):
    spec = {**paper_config["judge"], "score_mode": "yes_no",
            "yes_no": {**YES_NO, "questions": {"helpfulness": "Helpful?"}}}
    row = {"id": "1", "messages": [{"role": "user", "content": "q"}], "response": "r"}
    with pytest.raises(ValueError, match="relevance, factuality, harmlessness"):
        yes_no_prompts(spec, row)


def test_yes_no_without_its_block_fails_config_validation(paper_config):
    from prefbias.config import validate_config

    cfg = json.loads(json.dumps(paper_config))
    cfg["judge"]["score_mode"] = "yes_no"
    with pytest.raises(Exception, match="yes_no"):
        validate_config(cfg)
    cfg["judge"]["yes_no"] = YES_NO
    validate_config(cfg)
    # a second judge may ask its own questions (merged over the first judge's block)
    cfg["judge"]["second_judge"] = {"backend": "hf", "model": "qwen2.5-0.5b",
                                    "score_mode": "yes_no",
                                    "yes_no": {**YES_NO, "template": "Q {prompt} A {response} "
                                                                     "{question}"}}
    validate_config(cfg)
    assert resolve_judge_spec(cfg["judge"], "second")["yes_no"]["template"].startswith("Q ")
    cfg["judge"]["second_judge"]["yes_no"] = {"template": "no placeholders"}
    with pytest.raises(Exception, match="yes_no"):
        validate_config(cfg)


def test_yes_no_api_reads_the_first_token_distribution(tmp_path, spec, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    ln = math.log
    p_yes = {"helpfulness": 0.9, "relevance": 0.5, "factuality": 0.2, "harmlessness": 0.75}

    def yn_handler(body):
        assert body["max_tokens"] == 1 and body["logprobs"] is True
        text = body["messages"][0]["content"]
        assert text.startswith("Request: question 0?\nResponse: a\n\n")
        d = next(d for d in DIMS if f"good on {d}?" in text)
        top = {"Yes": ln(0.8 * p_yes[d]), "No": ln(0.8 * (1 - p_yes[d])), "I": ln(0.2)}
        return {"content": "Yes", "logprobs": token_logprobs([("Yes", top["Yes"], top)])}

    spec.update(score_mode="yes_no", yes_no=YES_NO)
    with OpenAIStubServer(handler=yn_handler) as srv:
        spec["base_url"] = srv.base_url
        run_judge(spec, make_generations(tmp_path / "g.jsonl", ["a"]), tmp_path / "o.jsonl",
                  tmp_path / "s.json")
        assert srv.n_requests == len(DIMS)
    row = read_jsonl(tmp_path / "o.jsonl")[0]
    assert not row["missing"]
    for d in DIMS:
        assert row["scores"][d] == pytest.approx(1 + 4 * p_yes[d])
        assert row["yes_no_mass"][d] == pytest.approx(0.8)


def test_yes_no_hf_tiny_model_matches_a_full_forward(paper_config, tiny_judge_dir):
    """Local yes/no scores: in [1, 5], deterministic, and equal with and without the KV cache
    the dimensions share."""
    spec = {**paper_config["judge"], "backend": "hf", "score_mode": "yes_no", "yes_no": YES_NO}
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"Question {i}?"}],
             "response": text} for i, text in enumerate(["a fine answer", "yes no", ""])]
    cached, full = HFJudge(tiny_judge_dir, spec), HFJudge(tiny_judge_dir, spec)
    full.reuse_cache = False
    assert {"Yes", "No"} <= set(cached.yes_no_ids) or {"yes", "no"} <= set(cached.yes_no_ids)
    for row in rows:
        a, b = cached.score(row), full.score(row)
        assert not a["missing"]
        for d in DIMS:
            assert 1.0 <= a["scores"][d] <= 5.0
            assert a["scores"][d] == pytest.approx(b["scores"][d], abs=1e-4)
            assert 0.0 < a["yes_no_mass"][d] <= 1.0
