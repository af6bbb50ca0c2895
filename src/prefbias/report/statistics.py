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
    from the per-dataset bootstrap CIs (an ``all`` key, if upstream writes one, is used as is)."""
    if "all" in per_dataset and template in per_dataset["all"]:
        e = per_dataset["all"][template]
        return {k: num(e.get(k)) for k in ("score", "accuracy", "ci_low", "ci_high", "n")}
    entries = [d[template] for d in per_dataset.values() if template in d]
    n = sum(num(e.get("n")) for e in entries)
    if not entries or not n:
        return {"score": math.nan, "accuracy": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "n": 0}
    w = [num(e.get("n")) / n for e in entries]
    score = sum(wi * num(e.get("score")) for wi, e in zip(w, entries, strict=True))
    acc = sum(wi * num(e.get("accuracy")) for wi, e in zip(w, entries, strict=True))
    se = math.sqrt(sum((wi * (num(e.get("ci_high")) - num(e.get("ci_low"))) / (2 * Z95)) ** 2
                       for wi, e in zip(w, entries, strict=True)))
    return {"score": score, "accuracy": acc, "ci_low": score - Z95 * se,
            "ci_high": score + Z95 * se, "n": n}


def pool_ays(per_dataset: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Revision rate over datasets: pooled counts, Wilson 95% CI (``all`` used if present)."""
    if "all" in per_dataset:
        e = per_dataset["all"]
        return {k: num(e.get(k)) for k in ("revision_rate", "ci_low", "ci_high",
                                            "n_first_correct")}
    k = sum(num(e.get("n_revised")) for e in per_dataset.values())
    n = sum(num(e.get("n_first_correct")) for e in per_dataset.values())
    lo, hi = wilson(k, n)
    return {"revision_rate": k / n if n else math.nan, "ci_low": lo, "ci_high": hi,
            "n_first_correct": n}


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
    out: dict[str, float | None] = {}
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
