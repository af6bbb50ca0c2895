"""The papers' reported numbers and qualitative claims (``paper_numbers.yaml``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


@cache
def load() -> dict[str, Any]:
    return yaml.safe_load(PAPER_NUMBERS.read_text(encoding="utf-8"))


def reported_table(name: str) -> dict[str, Any]:
    """``{"caption", "columns", "rows": {label: [values]}}`` of a stylized-dpo table."""
    return load()["stylized-dpo"][name]


def row_order(name: str) -> list[str]:
    return list(reported_table(name)["rows"])


def claims(figure: str | None = None, paper: str | None = None) -> list[dict[str, Any]]:
    out = load()["claims"]
    return [c for c in out if (figure is None or c["figure"] == figure)
            and (paper is None or c["paper"] == paper)]
