"""``openai`` backend against a real local HTTP server (tests/support/openai_server.py)."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from support.openai_server import Fault, OpenAIStubServer

from prefbias.generation.base import (
    GenerationError,
    GenRequest,
    Sampling,
    partial_path,
    run_resumable,
)
from prefbias.generation.factory import make_backend
from prefbias.io import read_jsonl

FAKE_KEY = "sk-test-SECRET-7f3a9c1e5b"
S = Sampling(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=16, seed=0)


def _reqs(n):
    return [GenRequest(f"q{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def _backend(srv, **kw):
    opts = dict(base_url=srv.base_url, api_key_env="PREFBIAS_TEST_KEY", max_concurrency=4,
                max_retries=4, timeout_s=60.0, backoff_s=0.01, max_backoff_s=0.05)
    opts.update(kw)
    return make_backend("openai", "stub-model", model_name="served-model", **opts)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("PREFBIAS_TEST_KEY", FAKE_KEY)


def test_answers_in_request_order_with_sampling_mapped():
    with OpenAIStubServer(api_key=FAKE_KEY) as srv:
        res = _backend(srv).generate(_reqs(5), S)
        bodies = srv.bodies
    assert [r.id for r in res] == [f"q{i}" for i in range(5)]
    assert res[3].text == "echo: question 3" and res[3].finish_reason == "stop"
    b = bodies[0]
    assert (b["model"], b["temperature"], b["top_p"], b["max_tokens"], b["seed"], b["top_k"]) == \
        ("stub-model", 0.6, 0.95, 16, 0, 20)


def test_retries_429_500_timeout_and_malformed():
    faults = ["429", "500", "503", Fault("timeout", sleep_s=10.0), "malformed"]
    with OpenAIStubServer(api_key=FAKE_KEY, faults=faults) as srv:
        res = _backend(srv, max_concurrency=1, max_retries=5, timeout_s=5.0).generate(_reqs(2), S)
        kinds = [r.fault for r in srv.chat_requests]
    assert [r.text for r in res] == ["echo: question 0", "echo: question 1"]
    assert kinds == ["429", "500", "503", "timeout", "malformed", None, None]


def test_retries_are_bounded_and_errors_clear():
    with OpenAIStubServer(api_key=FAKE_KEY, fault_fn=lambda n, b: "500") as srv:
        with pytest.raises(GenerationError, match=r"'q0'.*after 3 attempts: HTTP 500"):
            _backend(srv, max_retries=2, max_concurrency=1).generate(_reqs(1), S)
        assert srv.n_requests == 3
    with OpenAIStubServer(api_key=FAKE_KEY, fault_fn=lambda n, b: "400") as srv:
        with pytest.raises(GenerationError, match="HTTP 400"):
            _backend(srv).generate(_reqs(1), S)
        assert srv.n_requests == 1  # not retried


def test_unreachable_endpoint():
    with OpenAIStubServer() as srv:
        url = srv.base_url
    with pytest.raises(GenerationError, match=f"cannot reach endpoint {url} after 3 attempts"):
        make_backend("openai", "m", base_url=url, api_key_env="PREFBIAS_TEST_KEY", max_retries=2,
                     backoff_s=0.01, timeout_s=1.0).generate(_reqs(1), S)


def test_concurrency_never_exceeds_the_bound():
    with OpenAIStubServer(latency_s=0.05) as srv:
        _backend(srv, max_concurrency=3).generate(_reqs(20), S)
        assert srv.max_in_flight == 3
        assert srv.n_requests == 20


def test_no_request_twice_after_a_crash(tmp_path):
    """A run that dies mid-way resumes from the partial file: every id is requested once."""
    out = tmp_path / "gen.jsonl"
    with OpenAIStubServer(api_key=FAKE_KEY, latency_s=0.01) as srv:
        # request q5 fails permanently on the first run (a "crash" after other rows were written)
        srv.add_faults(*[Fault("500", match=lambda b: b["messages"][0]["content"] ==
                               "question 5")] * 2)
        with pytest.raises(GenerationError):
            run_resumable(_backend(srv, max_concurrency=2, max_retries=1), _reqs(10), S, out)
        assert not out.exists()
        first = [b["messages"][0]["content"] for b in srv.bodies]
        done = {r["id"] for r in read_jsonl(partial_path(out))}
        assert done and "q5" not in done
        srv.reset_counts()
        stats = run_resumable(_backend(srv, max_concurrency=2), _reqs(10), S, out)
        second = [b["messages"][0]["content"] for b in srv.bodies]
    assert stats["resumed"] == len(done)
    asked_again = {f"q{q.split()[1]}" for q in second}
    assert not done & asked_again  # nothing recorded is asked again
    assert done | asked_again == {f"q{i}" for i in range(10)}
    assert first
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(10)]
    assert not partial_path(out).exists()
    assert rows[0]["backend"] == "openai" and rows[0]["model"] == "served-model"


def test_torn_partial_line_is_dropped(tmp_path):
    out = tmp_path / "gen.jsonl"
    with OpenAIStubServer() as srv:
        b = _backend(srv)
        run_resumable(b, _reqs(3), S, out, finalize=False)
        with open(partial_path(out), "a") as fh:
            fh.write('{"id": "q3", "resp')  # crash mid-write
        srv.reset_counts()
        run_resumable(b, _reqs(5), S, out)
        assert sorted(x["messages"][0]["content"] for x in srv.bodies) == \
            ["question 3", "question 4"]
    assert len(read_jsonl(out)) == 5


def test_changed_sampling_invalidates_the_partial(tmp_path):
    out = tmp_path / "gen.jsonl"
    with OpenAIStubServer() as srv:
        b = _backend(srv)
        run_resumable(b, _reqs(3), S, out, finalize=False)
        srv.reset_counts()
        run_resumable(b, _reqs(3), Sampling(temperature=0, max_new_tokens=16), out)
        assert srv.n_requests == 3


def test_api_key_never_logged_or_written(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "gen.jsonl"
    with OpenAIStubServer(api_key=FAKE_KEY, faults=["429", "500", "400"]) as srv:
        b = _backend(srv, max_concurrency=1)
        with pytest.raises(GenerationError) as err:
            run_resumable(b, _reqs(2), S, out)
        run_resumable(b, _reqs(2), S, out)
        auth = {r.headers.get("Authorization") for r in srv.chat_requests}
    assert auth == {f"Bearer {FAKE_KEY}"}  # the key was used ...
    captured = capfd.readouterr()
    texts = [caplog.text, captured.out, captured.err, str(err.value), out.read_text()]
    assert all(FAKE_KEY not in t for t in texts)  # ... and appears nowhere
    assert "retry" in caplog.text


def test_missing_key_for_openai_proper(monkeypatch):
    monkeypatch.delenv("PREFBIAS_TEST_KEY")
    with pytest.raises(GenerationError, match="PREFBIAS_TEST_KEY .* is not set"):
        make_backend("openai", "gpt-4o-mini", api_key_env="PREFBIAS_TEST_KEY")


def test_prefill_and_top_k_are_vllm_extensions():
    pre = GenRequest("p", [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "Sure"}])
    with OpenAIStubServer() as srv:
        _backend(srv).generate([pre], S)
        body = srv.bodies[0]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    official = make_backend("openai", "gpt-4o-mini", api_key_env="PREFBIAS_TEST_KEY")
    with pytest.raises(GenerationError, match="prefill"):
        official.generate([pre], S)


def test_stub_server_counts_in_flight_from_threads():
    """The server itself: in-flight tracking sees parallel clients."""
    import urllib.request

    with OpenAIStubServer(latency_s=0.2) as srv:
        def call():
            req = urllib.request.Request(f"{srv.base_url}/chat/completions", method="POST",
                                         data=json.dumps({"model": "m", "messages": [
                                             {"role": "user", "content": "x"}]}).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=60).read()

        ts = [threading.Thread(target=call) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert srv.max_in_flight >= 2 and srv.n_requests == 4
