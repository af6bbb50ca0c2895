"""What a user sees on the console (issue 21): the plan of `--profile slurm` on a machine without
apptainer, a Snakefile run from the wrong directory, a frozen run whose files changed later."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from prefbias.hpc import hook

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def _workflow(methods, main=True):
    return SimpleNamespace(is_main_process=main,
                           deployment_settings=SimpleNamespace(deployment_method=methods))


def test_apptainer_deployment_is_recognised(monkeypatch):
    from snakemake.settings.types import DeploymentMethod

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert hook.apptainer_missing(_workflow({DeploymentMethod.APPTAINER}))
    assert not hook.apptainer_missing(_workflow({DeploymentMethod.APPTAINER}, main=False))
    assert not hook.apptainer_missing(_workflow(set()))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert not hook.apptainer_missing(_workflow({DeploymentMethod.APPTAINER}))


def test_a_real_run_without_apptainer_stops_before_any_job(monkeypatch, tiny_config):
    from snakemake.exceptions import WorkflowError
    from snakemake.settings.types import DeploymentMethod

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(WorkflowError, match="needs apptainer or singularity"):
        hook.on_workflow_start(_workflow({DeploymentMethod.APPTAINER}), tiny_config)


@pytest.mark.skipif(bool(shutil.which("apptainer") or shutil.which("singularity")),
                    reason="checks a machine without apptainer")
def test_slurm_profile_dry_run_works_without_apptainer():
    """docs/HPC.md: look at the plan first. Snakemake checks for apptainer before a dry run
    with --sdm apptainer; the rules then plan without images (common.smk) and say so."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n",
                           "--configfile=configs/tiny.yaml", "results/tiny/tables/table4.csv"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "planning without images" in out and "train_sft" in out


def test_snakefile_run_elsewhere_says_config_yaml_is_not_here(tmp_path):
    """From another directory (an overlay given or not) the Snakefile names the missing
    config.yaml instead of listing every required key as missing."""
    for extra in ([], ["--configfile", str(ROOT / "configs" / "tiny.yaml")]):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                               "-n", *extra], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env=ENV)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "config.yaml not found here" in out and str(ROOT) in out, out[-2000:]
        assert "required property" not in out
