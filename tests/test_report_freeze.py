"""freeze / verify / unfreeze: manifest content, tamper detection, no secrets, re-runnable."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

from prefbias.report import freeze

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "report"))
from build import build  # noqa: E402

SECRET = "sk-test-SECRET123"


@pytest.fixture
def frozen(tmp_path, tiny_config, monkeypatch, repo_root):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    R = build(tmp_path / "R", tiny_config)
    (R / "report.html").write_text("<html>report</html>")
    cfg = copy.deepcopy(tiny_config)
    cfg["containers"] = {"train": "docker://example/train@sha256:" + "a" * 64}
    monkeypatch.setenv("APPTAINER_CONTAINER", "/images/train.sif")  # the run used its images
    stats = R / "eval" / "helm" / "sft-s0" / "mmlu.json"
    stats.parent.mkdir(parents=True, exist_ok=True)
    stats.write_text(json.dumps({"helm_version": "0.5.16", "helm_version_configured": "0.5.16"}))
    freeze.freeze(R, cfg, repo=repo_root)
    yield R
    freeze.make_writable(R)


def test_manifest_content(frozen, repo_root):
    m = json.loads((frozen / "MANIFEST.json").read_text())
    assert "CITATION.cff" in m["files"] and "report.html" in m["files"]
    assert "MANIFEST.json" not in m["files"]
    e = m["files"]["eval/helm/accuracy.csv"]
    assert len(e["sha256"]) == 64 and e["size"] > 0
    assert m["git"]["commit"] and isinstance(m["git"]["dirty"], bool)
    assert m["config"]["run"] == "tiny"
    assert m["provenance"]["containers"]["train"].startswith("docker://")
    assert m["provenance"]["containers_used"] is True
    assert m["packages"]["crfm-helm"] == "0.5.16"  # HELM's own environment, read from its stats
    assert "qwen2.5-0.5b" in m["provenance"]["models"]
    assert m["packages"]["pandas"] and m["hardware"]["cpu_count"]
    assert m["benchmarks"]["judge"]["jobs"] == 1
    assert m["snakemake_report"] == "report.html"


def test_manifest_lists_images_only_for_a_run_that_used_them(tmp_path, tiny_config, monkeypatch):
    for v in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        monkeypatch.delenv(v, raising=False)
    p = freeze.provenance(tiny_config, in_container=False)
    assert p["containers"] == {} and p["containers_used"] is False
    assert freeze.provenance(tiny_config, in_container=True)["containers"] == \
        tiny_config["containers"]
    assert freeze.helm_versions(tmp_path) == []  # no HELM ran: nothing claimed


def test_readonly_and_verify(frozen):
    assert not os.access(frozen / "eval", os.W_OK) or os.geteuid() == 0
    assert not (frozen / "MANIFEST.json").stat().st_mode & 0o222
    assert freeze.verify(frozen) == []
    freeze.make_writable(frozen)
    (frozen / "eval/helm/accuracy.csv").write_text("tampered\n")
    (frozen / "eval/reward/sft-s0.json").unlink()
    (frozen / "extra.txt").write_text("x")
    problems = freeze.verify(frozen)
    assert "changed: eval/helm/accuracy.csv" in problems
    assert "missing: eval/reward/sft-s0.json" in problems
    assert "extra: extra.txt" in problems


def test_no_secret_anywhere(frozen):
    for p in frozen.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(errors="ignore"), p


def test_redacts_secret_config_values(tmp_path, tiny_config):
    R = build(tmp_path / "R", tiny_config)
    cfg = copy.deepcopy(tiny_config)
    cfg["judge"]["api_key"] = SECRET
    cfg["generation"]["openai"]["base_url"] = SECRET
    freeze.freeze(R, cfg, readonly=False)
    assert SECRET not in (R / "MANIFEST.json").read_text()


def test_refreeze_after_change(frozen, tiny_config):
    freeze.make_writable(frozen)
    (frozen / "tables").mkdir(exist_ok=True)
    (frozen / "tables" / "new.csv").write_text("a\n1\n")
    freeze.freeze(frozen, tiny_config)  # re-runnable: un-read-only, rewrite
    assert freeze.verify(frozen) == []


def test_cli_verify_exit_codes(frozen, capsys):
    from prefbias.commands.report import run_verify

    class A:
        results = str(frozen)

    assert run_verify(A()) == 0
    freeze.make_writable(frozen)
    (frozen / "CITATION.cff").write_text("changed")
    assert run_verify(A()) == 1
    assert "changed: CITATION.cff" in capsys.readouterr().out
