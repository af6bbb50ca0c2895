"""issue 23 items 4 and 10: configs that passed validation and failed later (or wrote outside the
run's directories) are refused before any job runs, with the config key named."""

from __future__ import annotations

import copy
import hashlib
import os

import pytest

from prefbias.config import ConfigError, validate_config
from prefbias.data.fetch import fetch
from prefbias.io import DataError


def _refused(config: dict, key: str) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert f"config key '{key}" in str(err.value), str(err.value)
    return str(err.value)


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "/abs", ".hidden", "-x", "", "a b",
                                  "x\n"])
def test_unsafe_run_names_are_refused(tiny_config, name):
    c = copy.deepcopy(tiny_config)
    c["run"] = name
    _refused(c, "run")


@pytest.mark.parametrize("name", ["tiny", "paper", "run-2.1", "A_b"])
def test_safe_run_names_pass(tiny_config, name):
    validate_config({**copy.deepcopy(tiny_config), "run": name})


@pytest.mark.parametrize("section", ["models", "datasets"])
def test_model_and_dataset_names_are_path_safe(tiny_config, section):
    c = copy.deepcopy(tiny_config)
    first = next(iter(c[section]))
    c[section][".."] = c[section][first]
    _refused(c, section)


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"hidden_size": 63}, "hidden_size", "63 is not divisible by num_heads = 4"),
    ({"hidden_size": 60}, "hidden_size", "head dimension hidden_size / num_heads = 15 is odd"),
    ({"num_kv_heads": 3}, "num_kv_heads", "num_heads = 4 is not divisible by num_kv_heads = 3"),
    ({"num_heads": 3, "num_kv_heads": 3}, "hidden_size", "not divisible by num_heads = 3"),
])
def test_tiny_model_shapes_are_validated(tiny_config, change, key, words):
    c = copy.deepcopy(tiny_config)
    mid = next(m for m, s in c["models"].items() if s["source"] == "tiny")
    c["models"][mid].update(change)
    assert words in _refused(c, f"models.{mid}.{key}")


def _local_dataset(c: dict, path: str, sha: str | None) -> dict:
    c = copy.deepcopy(c)
    f = {"path": path} if sha is None else {"path": path, "sha256": sha}
    c["datasets"]["judge_extra"] = {"source": "local", "files": {"test": f}}
    return c


def test_dataset_outside_the_repository_needs_a_pinned_sha256(tiny_config, tmp_path,
                                                                repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    src = tmp_path / "outside.jsonl"
    src.write_text('{"id": 1}\n')
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    msg = _refused(_local_dataset(tiny_config, str(src), None),
                   "datasets.judge_extra.files.test.path")
    assert "outside the repository" in msg and "sha256" in msg
    # a relative path climbing out, and a symlink inside the repository pointing out
    _refused(_local_dataset(tiny_config, os.path.relpath(src, repo_root), None),
             "datasets.judge_extra.files.test.path")
    validate_config(_local_dataset(tiny_config, str(src), sha))  # pinned: allowed
    validate_config(_local_dataset(tiny_config, "tests/fixtures/data/judge_check/pairs.jsonl",
                                   None))  # a repository file: as before


def test_fetch_refuses_an_unpinned_file_outside_the_repository(tmp_path, repo_root,
                                                               monkeypatch):
    monkeypatch.chdir(repo_root)
    src = tmp_path / "outside.jsonl"
    src.write_text('{"id": 1}\n')
    spec = {"source": "local", "files": {"test": {"path": str(src)}}}
    with pytest.raises(DataError, match=r"datasets\.x\.files\.test.*outside the repository"):
        fetch(spec, "x", tmp_path / "o")
    assert not (tmp_path / "o" / "test.jsonl").exists()
    link = repo_root / ".pytest-outside-link.jsonl"
    link.symlink_to(src)
    try:
        spec = {"source": "local", "files": {"test": {"path": link.name}}}
        with pytest.raises(DataError, match="outside the repository"):
            fetch(spec, "x", tmp_path / "o")
    finally:
        link.unlink()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    fetch({"source": "local", "files": {"test": {"path": str(src), "sha256": sha}}}, "x",
          tmp_path / "o")
    assert (tmp_path / "o" / "test.jsonl").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(("by_model", "key"), [
    ({"no-such-model": "vllm"}, "sycophancy.backend_by_model.no-such-model"),
    ({"smollm2-135m-instruct": "tgi"}, "sycophancy.backend_by_model.smollm2-135m-instruct"),
    ({"../x": "vllm"}, "sycophancy.backend_by_model"),
])
def test_backend_by_model_names_configured_models_and_known_backends(tiny_config, by_model, key):
    c = copy.deepcopy(tiny_config)
    c["sycophancy"]["backend_by_model"] = by_model
    _refused(c, key)


def test_backend_by_model_takes_config_and_evaluated_model_ids(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["sycophancy"]["backend_by_model"] = {"smollm2-135m-instruct": "vllm",
                                           "orpo-aligned-gemma-7b-it-s0": "hf"}
    validate_config(c)
