"""Inter-judge agreement: Spearman and Pearson correlation per dimension, exact-agreement rate
and Cohen's quadratically weighted kappa (scores rounded to the 1..5 scale)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefbias.io import check_unique_ids, iter_jsonl, write_json


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    return pearson(_rank(np.asarray(a, float)), _rank(np.asarray(b, float)))


def weighted_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int] = (1, 2, 3, 4, 5),
                   weights: str = "quadratic") -> float | None:
    k = len(categories)
    idx = {c: i for i, c in enumerate(categories)}
    n = len(a)
    if n == 0:
        return None
    obs = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        obs[idx[x], idx[y]] += 1
    obs /= n
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    i, j = np.meshgrid(range(k), range(k), indexing="ij")
    w = ((i - j) / (k - 1)) ** 2 if weights == "quadratic" else np.abs(i - j) / (k - 1)
    denom = (w * exp).sum()
    if denom == 0:
        return None
    return float(1.0 - (w * obs).sum() / denom)


def _to_scale(v: float) -> int:
    return int(min(5, max(1, round(float(v)))))


def agreement(pairs_a: Sequence[float], pairs_b: Sequence[float]) -> dict[str, Any]:
    ra = [_to_scale(v) for v in pairs_a]
    rb = [_to_scale(v) for v in pairs_b]
    n = len(ra)
    return {"n": n, "spearman": spearman(pairs_a, pairs_b), "pearson": pearson(pairs_a, pairs_b),
            "exact_agreement": (sum(x == y for x, y in zip(ra, rb, strict=True)) / n) if n
            else None,
            "weighted_kappa": weighted_kappa(ra, rb)}


def judge_agreement(first: Sequence[str | Path], second: Sequence[str | Path],
                    dimensions: Sequence[str], out: str | Path, *,
                    judges: dict[str, str] | None = None) -> dict[str, Any]:
    """Pair rows of matching files (same model, same prompt id) where both judges scored."""
    if len(first) != len(second):
        raise ValueError("need the same number of first- and second-judge files")
    vals: dict[str, tuple[list[float], list[float]]] = {d: ([], []) for d in dimensions}
    n_rows = 0
    for fa, fb in zip(first, second, strict=True):
        a_lines, b_lines = list(iter_jsonl(fa)), list(iter_jsonl(fb))
        check_unique_ids(fa, a_lines)
        check_unique_ids(fb, b_lines)
        b_rows = {r["id"]: r for _, r in b_lines}
        for ra in (r for _, r in a_lines):
            rb = b_rows.get(ra["id"])
            if rb is None:
                continue
            n_rows += 1
            for d in dimensions:
                x, y = ra["scores"].get(d), rb["scores"].get(d)
                if x is not None and y is not None:
                    vals[d][0].append(float(x))
                    vals[d][1].append(float(y))
    result = {"judges": judges or {}, "n_rows": n_rows,
              "dimensions": {d: agreement(*vals[d]) for d in dimensions}}
    write_json(out, result)
    return result
