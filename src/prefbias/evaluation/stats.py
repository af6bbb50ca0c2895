"""Small statistics helpers shared by the evaluations: bootstrap CIs, summaries.

All bootstraps are seeded (``numpy.random.default_rng(seed)``) so a rerun gives identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _quantiles(samples: np.ndarray, ci: float) -> tuple[float, float]:
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(values: Sequence[float], *, n: int = 1000, seed: int = 0, ci: float = 0.95,
                 stat: Callable[[np.ndarray], float] = np.mean
                 ) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of ``stat`` over ``values`` (resampled with replacement).

    Returns ``(None, None)`` for an empty sample; a single value gives a zero-width interval.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return None, None
    if stat is np.mean:  # one stratum: the same draws and interval
        return stratified_bootstrap_ci([x], n=n, seed=seed, ci=ci)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(int(n), x.size))
    return _quantiles(np.apply_along_axis(stat, 1, x[idx]), ci)


def bootstrap_args(b: dict[str, Any]) -> dict[str, Any]:
    """``n``, ``seed``, ``ci`` of a config ``bootstrap`` block (schema defaults filled), as keyword
    arguments of the functions here."""
    return {"n": int(b["n"]), "seed": int(b["seed"]), "ci": float(b["ci"])}


def stratified_bootstrap_ci(strata: Sequence[Sequence[Any]], *,
                            stat: Callable[[Sequence[Any]], float] | None = None,
                            n: int = 1000, seed: int = 0, ci: float = 0.95
                            ) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of ``mean over strata of stat(stratum)``: every replicate resamples
    each stratum's units with replacement (``stat`` defaults to the mean of numbers; any other
    ``stat`` receives the resampled units themselves, e.g. ``(prob, label)`` pairs for an ECE).
    Empty strata are skipped; no units at all gives ``(None, None)``."""
    strata = [list(s) for s in strata if len(s)]
    if not strata:
        return None, None
    rng = np.random.default_rng(seed)
    samples = np.zeros(int(n))
    for units in strata:
        idx = rng.integers(0, len(units), size=(int(n), len(units)))
        if stat is None:
            samples += np.asarray(units, dtype=float)[idx].mean(axis=1)
        else:
            samples += np.array([stat([units[i] for i in row]) for row in idx])
    return _quantiles(samples / len(strata), ci)


def paired_bootstrap_diff(a: Sequence[float], b: Sequence[float], *, n: int = 1000, seed: int = 0,
                          ci: float = 0.95) -> tuple[float | None, float | None]:
    """CI of ``mean(a) - mean(b)`` where ``a[i]`` and ``b[i]`` belong to the same unit (question):
    units are resampled together."""
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.shape != xb.shape:
        raise ValueError("paired bootstrap needs equally long samples")
    if xa.size == 0:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xa.size, size=(int(n), xa.size))
    return _quantiles(xa[idx].mean(axis=1) - xb[idx].mean(axis=1), ci)


def summarize(values: Sequence[float | None], *, n_boot: int = 1000, seed: int = 0,
              ci: float = 0.95) -> dict[str, Any]:
    """``{mean, std, n, n_missing, ci_low, ci_high}``; ``None`` values count as missing."""
    present = [float(v) for v in values if v is not None and not _isnan(v)]
    n_missing = len(values) - len(present)
    if not present:
        return {"mean": None, "std": None, "n": 0, "n_missing": n_missing,
                "ci_low": None, "ci_high": None}
    x = np.asarray(present)
    lo, hi = bootstrap_ci(present, n=n_boot, seed=seed, ci=ci)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "n": int(x.size), "n_missing": n_missing, "ci_low": lo, "ci_high": hi}


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
