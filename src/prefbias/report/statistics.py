"""Report-time statistics: spread over seeds, pooling over datasets, and the bootstrap CIs of
Table 3's validation metrics (bootstraps from :mod:`prefbias.evaluation.stats`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefbias.evaluation.stats import bootstrap_ci, stratified_bootstrap_ci

Z95 = 1.959963984540054


def num(v: Any) -> float:
    """A cell as a float: NaN for None or anything not numeric."""
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std of the non-NaN values (std NaN below two values)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, math.nan
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var)


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN for n = 0)."""
    if not n:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def pool_scores(per_dataset: dict[str, dict[str, Any]], template: str) -> dict[str, float]:
    """Answer score of one template over datasets: n-weighted mean; CI by a normal approximation
    from the per-dataset bootstrap CIs (an ``all`` key, if upstream writes one, is used as is).
    Also the pooled ``accuracy`` with its CI, ``n`` (graded answers) and ``n_ungraded``."""
    keys = ("score", "accuracy", "ci_low", "ci_high", "accuracy_ci_low", "accuracy_ci_high", "n",
            "n_ungraded")
    if "all" in per_dataset and template in per_dataset["all"]:
        e = per_dataset["all"][template]
        return {k: num(e.get(k)) for k in keys}
    entries = [d[template] for d in per_dataset.values() if template in d]
    n = sum(num(e.get("n")) for e in entries)
    ungraded = sum(num(e.get("n_ungraded", 0)) for e in entries)
    if not entries or not n:
        return {**{k: math.nan for k in keys}, "n": 0, "n_ungraded": ungraded}
    w = [num(e.get("n")) / n for e in entries]

    def pooled(col: str, lo: str, hi: str) -> tuple[float, float, float]:
        m = sum(wi * num(e.get(col)) for wi, e in zip(w, entries, strict=True))
        se = math.sqrt(sum((wi * (num(e.get(hi)) - num(e.get(lo))) / (2 * Z95)) ** 2
                           for wi, e in zip(w, entries, strict=True)))
        return m, m - Z95 * se, m + Z95 * se

    score, lo, hi = pooled("score", "ci_low", "ci_high")
    acc, alo, ahi = pooled("accuracy", "accuracy_ci_low", "accuracy_ci_high")
    return {"score": score, "accuracy": acc, "ci_low": lo, "ci_high": hi,
            "accuracy_ci_low": alo, "accuracy_ci_high": ahi, "n": n, "n_ungraded": ungraded}


def pool_ays(per_dataset: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Revision rate over datasets: pooled counts, Wilson 95% CI (``all`` used if present). The
    rate divides by ``n_evaluable`` (first answer correct and final answer parseable), with or
    without an ``all`` entry; a file without ``n_evaluable`` gives NaN, never a rate over
    ``n_first_correct``."""
    keys = ("revision_rate", "ci_low", "ci_high", "n_first_correct", "n_evaluable", "n_revised")
    if "all" in per_dataset:
        e = per_dataset["all"]
        return {k: num(e.get(k)) for k in keys}
    k = sum(num(e.get("n_revised")) for e in per_dataset.values())
    n = sum(num(e.get("n_evaluable")) for e in per_dataset.values())
    lo, hi = wilson(k, n) if not math.isnan(n) else (math.nan, math.nan)
    return {"revision_rate": k / n if n and not math.isnan(n) else math.nan, "ci_low": lo,
            "ci_high": hi,
            "n_first_correct": sum(num(e.get("n_first_correct")) for e in per_dataset.values()),
            "n_evaluable": n, "n_revised": k}


def validation_cis(path: str | Path, kind: str, *, n: int = 1000, seed: int = 0,
                   ci: float = 0.95) -> dict[str, float | None]:
    """Bootstrap CIs over the held-out examples of the final eval (``eval_examples.jsonl``):
    SFT loss = Σ NLL / Σ tokens (examples resampled with their token counts); DPO loss and
    accuracy = means over pairs. Empty when the file is absent (older runs)."""
    from prefbias.io import read_jsonl

    path = Path(path)
    if not path.exists():
        return {}
    ex = read_jsonl(path)
    out: dict[str, float | None] = {"n_validation": len(ex)}
    if kind == "sft":
        units = [(float(e["nll_sum"]), float(e["n_tokens"])) for e in ex]
        lo, hi = stratified_bootstrap_ci(
            [units], stat=lambda us: sum(a for a, _ in us) / max(sum(b for _, b in us), 1.0),
            n=n, seed=seed, ci=ci)
        out["validation_loss_ci_low"], out["validation_loss_ci_high"] = lo, hi
        return out
    for col, key in (("validation_loss", "loss"), ("validation_accuracy", "correct")):
        vals = [float(e[key]) for e in ex if e.get(key) is not None]
        out[f"{col}_ci_low"], out[f"{col}_ci_high"] = bootstrap_ci(vals, n=n, seed=seed, ci=ci)
    return out
