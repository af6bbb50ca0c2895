"""issue 23 item 1: a key a server echoes back in a successful answer is never stored, and
`prefbias freeze` refuses a results tree that holds a secret value (naming file and variable,
never the value). Against the real local OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from prefbias.api_client import make_client
from prefbias.cache import DiskCache, cache_key
from prefbias.evaluation.judge import run_judge
from prefbias.io import read_jsonl, write_jsonl
from prefbias.report import freeze

try:
    from tests.support.openai_server import KEY_PLACEHOLDER, OpenAIStubServer, token_logprobs
except ModuleNotFoundError:  # tests/ itself is on sys.path
    from support.openai_server import KEY_PLACEHOLDER, OpenAIStubServer, token_logprobs

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "report"))
from build import build  # noqa: E402

KEY_ENV = "PREFBIAS_TEST_ECHO_KEY"
SECRET = "sk-test-ECHOED-7c1e55d0a9"
DIMS = ["helpfulness", "relevance", "factuality", "harmlessness"]


def echo_answer(body: dict) -> str:
    """A valid judge answer whose reasons quote the request's key back."""
    obj = {d: 4 for d in DIMS}
    obj["reasons"] = {d: f"authorised with {KEY_PLACEHOLDER}, fine" for d in DIMS}
    return json.dumps(obj)


def files_holding(root: Path, value: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


@pytest.fixture()
def spec(paper_config, monkeypatch) -> dict:
    monkeypatch.setenv(KEY_ENV, SECRET)
    s = {k: v for k, v in paper_config["judge"].items() if k != "second_judge"}
    s.update(api_key_env=KEY_ENV, max_retries=1, retry_backoff_s=0.01, timeout_s=5.0,
             max_concurrency=2, requests_per_minute=None, max_parse_retries=0,
             score_mode="parse", bootstrap={"n": 50, "seed": 0, "ci": 0.95})
    return s


def test_server_really_echoes_the_key(monkeypatch):
    """The test server sends the key back (so the tests below test something)."""
    import openai

    with OpenAIStubServer(handler=echo_answer, api_key=SECRET, echo_key=True) as srv:
        ans = openai.OpenAI(base_url=srv.base_url, api_key=SECRET).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])
    assert SECRET in ans.choices[0].message.content


def test_judge_stores_no_echoed_key(tmp_path, spec):
    gens = tmp_path / "g.jsonl"
    write_jsonl(gens, [{"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}],
                        "response": "r"} for i in range(3)])
    with OpenAIStubServer(handler=echo_answer, api_key=SECRET, echo_key=True) as srv:
        spec["base_url"] = srv.base_url
        run_judge(spec, gens, tmp_path / "out" / "j.jsonl", tmp_path / "out" / "s.json",
                  cache_dir=tmp_path / "cache")
        assert srv.n_requests == 3
    rows = read_jsonl(tmp_path / "out" / "j.jsonl")
    assert [r["scores"]["helpfulness"] for r in rows] == [4, 4, 4]
    assert rows[0]["reasons"]["helpfulness"] == "authorised with ***, fine"
    assert files_holding(tmp_path, SECRET) == []
    assert list((tmp_path / "cache").rglob("*.json"))  # the answers were cached, scrubbed


def test_client_scrubs_content_logprobs_and_cache(tmp_path, spec):
    def handler(body):
        return {"content": f"key={KEY_PLACEHOLDER}",
                "logprobs": token_logprobs([(KEY_PLACEHOLDER, -0.1, {KEY_PLACEHOLDER: -0.1})])}

    with OpenAIStubServer(handler=handler, api_key=SECRET, echo_key=True) as srv:
        c = make_client({**spec, "base_url": srv.base_url}, tmp_path / "cache",
                        purpose="judge", section="judge")
        ans = c.complete([{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1)
    assert ans["text"] == "key=***"
    assert ans["logprobs"] == [{"token": "***", "top": {"***": -0.1}}]
    assert SECRET not in json.dumps(ans)
    assert files_holding(tmp_path, SECRET) == []


def test_cache_entry_written_before_the_fix_is_scrubbed_when_read(tmp_path, spec):
    """An entry that holds the key (an older version stored answers verbatim) is scrubbed and
    rewritten the first time it is read; nothing downstream sees the key."""
    make_client(spec, None, purpose="judge", section="judge")  # the process reads the key
    cache = DiskCache(tmp_path / "cache")
    key = cache_key("chat", "m", [], {}, 0)
    path = tmp_path / "cache" / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"text": f"echo {SECRET}", "logprobs": None}))
    assert cache.get(key) == {"text": "echo ***", "logprobs": None}
    assert SECRET not in path.read_text()


def _results(tmp_path, tiny_config) -> Path:
    R = build(tmp_path / "R", tiny_config)
    (R / "report.html").write_text("<html>report</html>")
    return R


def test_freeze_refuses_a_run_holding_a_config_named_secret(tmp_path, tiny_config, monkeypatch,
                                                            capsys):
    """The judge's api_key_env names the variable; its value in a judge row stops the freeze;
    the error names the file and the variable, never the value."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    cfg = copy.deepcopy(tiny_config)
    cfg["judge"]["api_key_env"] = KEY_ENV
    R = _results(tmp_path, cfg)
    leaked = R / "eval" / "judge" / "leak.jsonl"
    leaked.parent.mkdir(parents=True, exist_ok=True)
    leaked.write_text(json.dumps({"id": "p0", "reasons": {"x": f"key {SECRET}"}}) + "\n")
    with pytest.raises(freeze.FreezeError) as err:
        freeze.freeze(R, cfg, readonly=False)
    msg = str(err.value)
    assert "eval/judge/leak.jsonl" in msg and KEY_ENV in msg
    assert SECRET not in msg
    assert not (R / "MANIFEST.json").exists()
    # the CLI exits non-zero without printing the value
    from prefbias.cli import main

    code = None
    try:
        code = main(["freeze", str(R), "--config-json", json.dumps(cfg), "--no-readonly"])
    except freeze.FreezeError as e:
        assert SECRET not in str(e)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert code != 0 and SECRET not in out.out + out.err
    assert not (R / "MANIFEST.json").exists()
    # once the file is gone, the run freezes
    leaked.unlink()
    freeze.freeze(R, cfg, readonly=False)
    assert freeze.verify(R) == []


def test_freeze_checks_standard_variables_and_passes_without_secrets(tmp_path, tiny_config,
                                                                     monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "Q" * 30)
    R = _results(tmp_path, tiny_config)
    (R / "tables").mkdir(exist_ok=True)
    (R / "tables" / "note.md").write_text("token hf_" + "Q" * 30 + "\n")
    with pytest.raises(freeze.FreezeError, match=r"tables/note\.md: holds the value of \$HF_TOKEN"):
        freeze.freeze(R, tiny_config, readonly=False)
    (R / "tables" / "note.md").write_text("no token here\n")
    freeze.freeze(R, tiny_config, readonly=False)
