"""The workflow conventions hold: ruff-clean Python, snakefmt-formatted rules, `snakemake --lint`
without a single lint for the paper config and the tiny default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, capture_output=True,
                          text=True)


def test_ruff_clean():
    proc = _run("ruff", "check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_snakefmt_clean():
    proc = _run("snakefmt", "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("configs", [[], ["--configfile", "configs/tiny.yaml"]],
                         ids=["paper", "tiny"])
def test_snakemake_lint_clean(configs):
    proc = _run("snakemake", "--lint", *configs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]
