"""The shared OpenAI-compatible client (prefbias.api_client) against a real local HTTP server
(tests/support/openai_server.py): Retry-After cap, retries, cache, key handling, concurrency,
cost log — and that generation, the judge and the grader all get these from it."""

from __future__ import annotations

import logging
import threading
import time
from email.utils import formatdate

import pytest

from prefbias.api_client import (
    ApiAuthError,
    ApiClient,
    ApiError,
    ApiKeyError,
    ApiSettings,
    iter_parallel,
    make_client,
    retry_after_s,
    run_parallel,
)

try:
    from tests.support.openai_server import Fault, OpenAIStubServer
except ModuleNotFoundError:  # tests/ itself is on sys.path
    from support.openai_server import Fault, OpenAIStubServer

KEY_ENV = "PREFBIAS_TEST_API_KEY"
SECRET = "sk-test-SECRET-a1b2c3d4e5f6"
HOUR = {"Retry-After": "3600"}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def client(srv, cache_dir=None, **kw) -> ApiClient:
    spec = {"model": "stub-model", "base_url": srv.base_url, "api_key_env": KEY_ENV,
            "max_retries": 2, "retry_backoff_s": 0.01, "max_backoff_s": 0.05,
            "max_retry_after_s": 0.2, "timeout_s": 5.0, **kw}
    return make_client(spec, cache_dir, purpose="test", section="judge")


MSG = [{"role": "user", "content": "hello"}]


# ------------------------------------------------------------------------------- Retry-After
def test_retry_after_an_hour_is_capped_and_counts_as_a_failed_attempt(caplog):
    """issue 17 item 7: a 429 with Retry-After: 3600 must not park the worker for an hour."""
    with OpenAIStubServer(api_key=SECRET,
                          fault_fn=lambda n, b: Fault("429", headers=HOUR)) as srv:
        c = client(srv)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING), pytest.raises(ApiError) as err:
            c.complete(MSG)
        elapsed = time.monotonic() - t0
        assert srv.n_requests == 3                     # max_retries + 1 attempts, then failure
    assert elapsed < 5.0                               # seconds, not an hour
    assert err.value.kind == "exhausted" and err.value.attempts == 3
    assert "after 3 attempts" in str(err.value) and "HTTP 429" in str(err.value)
    assert c.usage["retry_after_capped"] == 2          # both waits were capped
    assert "judge.max_retry_after_s" in caplog.text    # the log names the config key


def test_retry_after_an_hour_once_then_success_waits_only_the_cap():
    with OpenAIStubServer(api_key=SECRET, faults=[Fault("429", headers=HOUR)]) as srv:
        c = client(srv, max_retry_after_s=0.3)
        t0 = time.monotonic()
        ans = c.complete(MSG)
        elapsed = time.monotonic() - t0
        assert srv.n_requests == 2
    assert ans["text"] == "echo: hello"
    assert 0.3 * 0.99 <= elapsed < 3.0


def test_retry_after_below_the_cap_is_honoured():
    with OpenAIStubServer(faults=[Fault("503", headers={"retry-after-ms": "400"})]) as srv:
        c = client(srv, max_retry_after_s=10.0)
        t0 = time.monotonic()
        c.complete(MSG)
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.4 * 0.99  # more than the 0.01-0.05 s backoff: the server's value
    assert c.usage["retry_after_capped"] == 0


def test_retry_after_header_forms():
    class R:
        def __init__(self, h):
            self.headers = h

    assert retry_after_s(R({"retry-after": "3600"})) == 3600.0
    assert retry_after_s(R({"retry-after-ms": "250"})) == 0.25
    date = formatdate(time.time() + 120, usegmt=True)
    assert 100 <= retry_after_s(R({"retry-after": date})) <= 121
    assert retry_after_s(R({"retry-after": "soon"})) is None
    assert retry_after_s(R({})) is None and retry_after_s(None) is None


@pytest.mark.parametrize("where", ["generation", "judge", "grader"])
def test_every_caller_caps_retry_after(tmp_path, where, paper_config):
    """The cap comes from each caller's config section, through the one client."""
    fault = lambda n, b: Fault("429", headers=HOUR)  # noqa: E731
    with OpenAIStubServer(api_key=SECRET, fault_fn=fault) as srv:
        common = {"base_url": srv.base_url, "api_key_env": KEY_ENV, "max_retries": 1,
                  "max_retry_after_s": 0.1, "timeout_s": 5.0}
        t0 = time.monotonic()
        if where == "generation":
            from prefbias.generation.base import (
                GenerationError,
                GenRequest,
                Sampling,
            )
            from prefbias.generation.factory import make_backend

            b = make_backend("openai", "stub-model", backoff_s=0.01, max_backoff_s=0.02,
                             **common)
            with pytest.raises(GenerationError, match="after 2 attempts: HTTP 429"):
                b.generate([GenRequest("q", MSG)], Sampling(temperature=0, max_new_tokens=4))
        elif where == "judge":
            from prefbias.evaluation.judge import run_judge
            from prefbias.io import write_jsonl

            gens = tmp_path / "g.jsonl"
            write_jsonl(gens, [{"id": "p0", "messages": MSG, "response": "hi"}])
            spec = {**paper_config["judge"], **common, "retry_backoff_s": 0.01}
            with pytest.raises(ApiError, match="after 2 attempts"):
                run_judge(spec, gens, tmp_path / "o.jsonl", tmp_path / "s.json")
        else:
            from prefbias.evaluation.grading import Grader

            g = Grader({**paper_config["sycophancy"]["grader"], **common,
                        "retry_backoff_s": 0.01})
            with pytest.raises(ApiError, match="after 2 attempts"):
                g.grade_many([("Q?", "A", {"correct_answer": "A"})])
        assert srv.n_requests == 2
    assert time.monotonic() - t0 < 5.0


# ------------------------------------------------------------------------ retries and errors
def test_retryable_and_permanent_errors():
    faults = ["429", "500", "502", Fault("timeout", sleep_s=3.0), "malformed", "drop", "408"]
    with OpenAIStubServer(faults=faults) as srv:
        c = client(srv, max_retries=len(faults), timeout_s=1.0)
        assert c.complete(MSG)["text"] == "echo: hello"
        assert srv.n_requests == len(faults) + 1
        assert c.usage["retries"] == len(faults)
    with OpenAIStubServer(fault_fn=lambda n, b: "400") as srv:
        with pytest.raises(ApiError) as err:
            client(srv).complete(MSG)
        assert srv.n_requests == 1 and err.value.kind == "permanent"


def test_unreachable_endpoint_is_named():
    with OpenAIStubServer() as srv:
        url = srv.base_url
    c = make_client({"model": "m", "base_url": url, "api_key_env": KEY_ENV, "max_retries": 1,
                     "retry_backoff_s": 0.01, "timeout_s": 1.0}, purpose="test")
    with pytest.raises(ApiError, match=f"cannot reach endpoint {url} after 2 attempts") as err:
        c.complete(MSG)
    assert err.value.kind == "unreachable"


# ------------------------------------------------------------------------------------ secrets
def test_missing_key_fails_at_construction_naming_the_config_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with OpenAIStubServer() as srv:
        with pytest.raises(ApiKeyError, match=rf"{KEY_ENV} \(judge.api_key_env\) is not set"):
            client(srv)
        # a keyless custom endpoint is allowed only where the caller says so (vllm serve)
        c = make_client({"model": "m", "base_url": srv.base_url, "api_key_env": KEY_ENV},
                        purpose="test", keyless_custom_endpoint=True)
        assert c.complete(MSG)["text"] == "echo: hello"
        assert srv.chat_requests[0].headers["Authorization"] == "Bearer EMPTY"
        assert srv.n_requests == 1
    with pytest.raises(ApiKeyError):  # OpenAI itself always needs the key
        make_client({"model": "m", "api_key_env": KEY_ENV}, purpose="test",
                    keyless_custom_endpoint=True)


def test_key_is_sent_but_never_logged_cached_or_in_errors(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with OpenAIStubServer(api_key=SECRET, faults=["429", "500"]) as srv:
        c = client(srv, tmp_path / "cache")
        c.complete(MSG)
        c.log_usage()
        assert {r.headers["Authorization"] for r in srv.chat_requests} == {f"Bearer {SECRET}"}
    with OpenAIStubServer(api_key="another-key") as srv:
        with pytest.raises(ApiAuthError) as err:
            client(srv).complete(MSG)
        assert srv.n_requests == 1  # 401 is not retried
    out = capfd.readouterr()
    for text in (caplog.text, out.out, out.err, str(err.value), err.value.last):
        assert SECRET not in text
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text()


# ---------------------------------------------------------------------------- cache and cost
def test_cache_replays_answers_and_separates_options(tmp_path):
    with OpenAIStubServer() as srv:
        c = client(srv, tmp_path / "cache", price_per_1m_tokens={"input": 2.0, "output": 4.0})
        first = c.complete(MSG, max_tokens=8)
        assert not first["cached"]
        again = client(srv, tmp_path / "cache").complete(MSG, max_tokens=8)
        assert again["cached"] and again["text"] == first["text"]
        assert srv.n_requests == 1
        c.complete(MSG, max_tokens=9)               # other options: a new request
        c.complete(MSG, max_tokens=8, variant=1)    # a deliberate repeat: a new request
        c.complete(MSG, max_tokens=8, seed=3)
        assert srv.n_requests == 4
        info = c.log_usage()
    # stub usage: prompt tokens = words of the messages (1), completion = words of the answer (2)
    assert info["prompt_tokens"] == 4 and info["completion_tokens"] == 8
    assert info["estimated_cost_usd"] == pytest.approx((4 * 2.0 + 8 * 4.0) / 1e6)
    assert info["cache_hits"] == 0 and info["requests"] == 4


# ------------------------------------------------------------------------------- concurrency
def test_concurrency_bound_and_first_error_stops_new_work():
    with OpenAIStubServer(latency_s=0.05) as srv:
        c = client(srv, max_concurrency=3)
        out = run_parallel(list(range(12)), lambda i, abort: c.complete(
            [{"role": "user", "content": f"q{i}"}], abort=abort)["text"], c.max_concurrency)
        assert out == [f"echo: q{i}" for i in range(12)]
        assert srv.max_in_flight == 3
    started = []
    lock = threading.Lock()

    def fn(i, abort):
        with lock:
            started.append(i)
        if i == 1:
            raise ValueError("boom")
        time.sleep(0.05)
        return i

    with pytest.raises(ValueError, match="boom"):
        list(iter_parallel(list(range(50)), fn, 2))
    assert len(started) < 10  # lazy submission: the rest is never started


def test_settings_from_a_config_section(paper_config):
    s = ApiSettings.from_spec(paper_config["judge"], section="judge")
    assert (s.model, s.max_retry_after_s, s.retry_backoff_s) == ("gpt-4o-mini", 60.0, 1.0)
    g = ApiSettings.from_spec(paper_config["sycophancy"]["grader"], section="sycophancy.grader")
    assert g.model == "gpt-3.5-turbo-0125" and g.max_retry_after_s == 60.0
    assert g.price_per_1m_tokens == {"input": 0.5, "output": 1.5}
    assert paper_config["generation"]["openai"]["max_retry_after_s"] == 60
    with pytest.raises(ApiKeyError, match="no api_key_env"):  # null: no key configured
        make_client({"model": "m", "api_key_env": None}, purpose="test")
