"""Where HELM's helm-run is found (issue 13.3): PATH inside containers/helm.def's image, which
has no .venv-helm; .venv-helm (then PATH) on a workstation. Fast: no HELM run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefbias.evaluation import helm_env, helm_run


def _helm_run_in(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    exe = d / "helm-run"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return d


@pytest.fixture
def layout(tmp_path):
    """A working tree with a (host) .venv-helm, and an image-like /usr/local/bin on PATH."""
    repo = tmp_path / "repo"
    venv_bin = _helm_run_in(repo / ".venv-helm" / "bin")
    image_bin = _helm_run_in(tmp_path / "image" / "usr" / "local" / "bin")
    root = tmp_path / "root"  # stands for "/" (no /.singularity.d unless a test makes one)
    root.mkdir()
    return repo, venv_bin, image_bin, root


def test_inside_apptainer_helm_run_comes_from_path_not_the_bound_venv(layout):
    repo, venv_bin, image_bin, root = layout
    env = {"APPTAINER_CONTAINER": "/images/helm.sif", "PATH": f"{image_bin}{os.pathsep}/bin"}
    assert helm_env.helm_bin_dir({}, env, repo=repo, root=root) == image_bin.resolve()
    # the marker directory alone (older Singularity without the variable) is enough
    (root / ".singularity.d").mkdir()
    env = {"PATH": str(image_bin)}
    assert helm_env.helm_bin_dir({}, env, repo=repo, root=root) == image_bin.resolve()


def test_outside_a_container_the_local_venv_helm_wins(layout, monkeypatch):
    repo, venv_bin, image_bin, root = layout
    monkeypatch.chdir(root)
    env = {"PATH": str(image_bin)}
    assert helm_env.helm_bin_dir({}, env, repo=repo, root=root) == venv_bin.resolve()
    # no .venv-helm: a helm-run on PATH (e.g. a conda env) is used
    (venv_bin / "helm-run").unlink()
    assert helm_env.helm_bin_dir({}, env, repo=repo, root=root) == image_bin.resolve()


def test_explicit_setting_wins_everywhere(layout, tmp_path):
    repo, venv_bin, image_bin, root = layout
    other = _helm_run_in(tmp_path / "other" / "bin")
    env = {"APPTAINER_CONTAINER": "x.sif", "PATH": str(image_bin),
           "PREFBIAS_HELM_BIN": str(other)}
    assert helm_env.helm_bin_dir({}, env, repo=repo, root=root) == other.resolve()
    env.pop("PREFBIAS_HELM_BIN")
    assert helm_env.helm_bin_dir({"python": str(other / "python")}, env, repo=repo,
                                 root=root) == other.resolve()


def test_container_without_helm_run_says_build_the_image(layout, tmp_path):
    repo, _venv_bin, _image_bin, root = layout
    env = {"SINGULARITY_CONTAINER": "x.sif", "PATH": str(tmp_path / "empty")}
    with pytest.raises(helm_run.HelmError, match="containers/helm.def"):
        helm_env.helm_bin_dir({}, env, repo=repo, root=root)


def test_the_image_puts_helm_run_on_path_and_has_no_venv():
    text = (Path(__file__).resolve().parents[1] / "containers" / "helm.def").read_text()
    assert ".venv-helm" not in text.split("%post", 1)[1]
    assert "helm-run --help" in text  # %test: helm-run resolves on the image's PATH


def test_a_docker_dev_box_is_not_an_apptainer_image(layout, monkeypatch):
    repo, venv_bin, image_bin, root = layout
    monkeypatch.chdir(root)
    (root / ".dockerenv").write_text("")
    assert not helm_env.in_container({}, root)
    assert helm_env.helm_bin_dir({}, {"PATH": str(image_bin)}, repo=repo,
                                 root=root) == venv_bin.resolve()
