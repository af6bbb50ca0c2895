"""Table and figure rows: the plan's model lists over every seed, as plain JSON for rule params.

Kept free of pandas so the Snakefile and the CLI parse quickly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prefbias import plan


def stylized_rows(config: dict[str, Any], *, trained_only: bool = False) -> list[dict[str, Any]]:
    """stylized-dpo rows (base, SFT, DPO models) over every seed, in paper order."""
    out = []
    for seed in config["seeds"]:
        for m in plan.stylized_models(config, seed):
            if trained_only and m.kind == "base":
                continue
            out.append({"id": m.id, "label": m.label, "seed": m.seed, "kind": m.kind})
    return out


def sycophancy_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """saa-orpo rows: per instruct model the non-aligned, aligned and aligned-SAA models."""
    out = []
    for seed in config["seeds"]:
        for m in plan.sycophancy_models(config, seed):
            out.append({"id": m.id, "label": m.label, "seed": m.seed, "kind": m.kind,
                        "instruct": m.init if m.kind != "base" else m.id})
    return out


def reward_pair_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the companion of Table 3 (``table3_pairs``): the ``reward_winrate.pairs`` over
    every seed, each with ``file`` = its win-rate JSON relative to ``results/<run>``."""
    from prefbias.evaluation.winrate import pair_result_path, resolve_pairs

    return [{**p, "file": pair_result_path(config, p["id"], p["baseline"])}
            for p in resolve_pairs(config)]


def dedupe(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(r["id"], r)
    return list(seen.values())


def json_rows(text_or_path: str) -> list[dict[str, Any]]:
    """``--rows`` argument: a JSON list, or a path to a JSON file holding one."""
    s = text_or_path.strip()
    value = json.loads(s) if s.startswith("[") else json.loads(Path(s).read_text("utf-8"))
    if not isinstance(value, list):
        raise ValueError("--rows must be a JSON list of {id, label, ...} objects")
    return value
