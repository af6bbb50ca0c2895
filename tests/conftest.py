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
