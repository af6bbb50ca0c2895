"""Snakemake's HTML report as a DAG job (prefbias.report.html) on a small real workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefbias.report.html import ReportError, report_command, snakemake_report

SNAKEFILE = """\
configfile: "config.yaml"


rule all:
    input:
        f"out/{config['name']}.csv",


rule table:
    output:
        report(f"out/{config['name']}.csv", caption="caption.rst", category="tables"),
    shell:
        "printf 'a,b\\n1,2\\n' > {output}"
"""


@pytest.fixture()
def workflow(tmp_path: Path) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "config.yaml").write_text("name: default\n")
    (tmp_path / "caption.rst").write_text("Caption of {{ snakemake.config['name'] }} table.\n")
    # the outer run uses an overlay: the report must see the same (resolved) config
    (tmp_path / "overlay.yaml").write_text("name: overlaid\n")
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile",
                    "overlay.yaml", "--quiet"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "out" / "overlaid.csv").exists()
    return tmp_path


def test_command_has_no_profile_and_no_lock():
    cmd = report_command(snakefile="S", configfile="c.yaml", out="r.html", targets=["a", "b"])
    assert cmd[1:3] == ["-m", "snakemake"]
    assert cmd[cmd.index("--workflow-profile") + 1] == "none"
    assert "--nolock" in cmd and cmd[-3:] == ["--", "a", "b"]


def test_report_of_resolved_config(workflow: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SNAKEMAKE_PROFILE", str(tmp_path / "no-such-profile"))  # ignored
    out = workflow / "results" / "report.html"
    log = (tmp_path / "report.log").open("w")
    snakemake_report(out, snakefile=workflow / "Snakefile", config={"name": "overlaid"},
                     targets=["out/overlaid.csv"], cwd=workflow, log=log)
    log.close()
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "overlaid.csv" in html and "Caption of overlaid table." in html
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporaries


def test_failed_report_leaves_nothing(workflow: Path, tmp_path: Path):
    out = workflow / "results" / "report.html"
    with pytest.raises(ReportError, match="exited with"):
        snakemake_report(out, snakefile=workflow / "Snakefile", config={"name": "other"},
                         targets=["out/other.csv"], cwd=workflow,
                         log=(tmp_path / "report.log").open("w"))
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_rejects_non_html(tmp_path: Path):
    with pytest.raises(ValueError, match=".html"):
        snakemake_report(tmp_path / "r.zip", snakefile="S", config={}, targets=["a"])


def test_resolved_config_file_is_read_as_json(tmp_path):
    """W/resolved_config.json is JSON: read as YAML, a float such as 1e-05 (the demo's DPO lr)
    became the string '1e-05' and the report's Snakemake run refused the config."""
    from prefbias.commands.report import _load_config

    cfg = {"dpo": {"optimizer": {"lr": 1e-05}}, "n": 3}
    path = tmp_path / "resolved_config.json"
    path.write_text(json.dumps(cfg))
    assert _load_config(str(path)) == cfg and isinstance(_load_config(str(path))["dpo"][
        "optimizer"]["lr"], float)
    assert _load_config(json.dumps(cfg)) == cfg
