"""Judge check: does the judge rank a relevant answer above an off-topic one?

A judge's scores mean something only if it tells answers apart. ``judge.check_set`` names a
dataset of hand-made ``{id, prompt, relevant, off_topic}`` rows; the configured judge (same
prompt, score mode and model as the judge rule) scores both answers of every row. Per row, the
relevant answer *wins* when its mean score over the dimensions is higher (a tie counts one half).
The summary holds the win rate and both answers' mean scores, each with a bootstrap CI over rows.
The papers report no such check; it is the sanity test of the judge behind every judge table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefbias.evaluation.judge import score_rows
from prefbias.evaluation.stats import bootstrap_args, summarize
from prefbias.io import DataError, UniqueIds, check_field, iter_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

ANSWERS = ("relevant", "off_topic")


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    ids = UniqueIds(path)
    for line, row in iter_jsonl(path):
        ids.add(check_field(row, "id", (str, int), path=path, line=line), line)
        for key in ("prompt", *ANSWERS):
            check_field(row, key, str, path=path, line=line, nonempty=True)
        rows.append(row)
    if not rows:
        raise DataError(path, "no judge-check rows")
    return rows


def mean_score(scores: dict[str, float | None]) -> float | None:
    """Mean over the dimensions the judge scored (None when it scored none)."""
    present = [v for v in scores.values() if v is not None]
    return sum(present) / len(present) if present else None


def win(relevant: float | None, off_topic: float | None) -> float | None:
    """1 when the relevant answer scores higher, 0.5 on a tie, 0 below; None if either is
    missing."""
    if relevant is None or off_topic is None:
        return None
    return 1.0 if relevant > off_topic else 0.5 if relevant == off_topic else 0.0


def run_judge_check(spec: dict[str, Any], pairs: str | Path, out: str | Path,
                    summary: str | Path, *, model_dir: str | Path | None = None,
                    cache_dir: str | Path | None = None) -> dict[str, Any]:
    rows = read_pairs(pairs)
    asks = [{"id": f"{r['id']}/{a}", "messages": [{"role": "user", "content": r["prompt"]}],
             "response": r[a]} for r in rows for a in ANSWERS]
    log.info("judge check: %d rows x %d answers from %s with %s (%s, %s)", len(rows),
             len(ANSWERS), pairs, spec["model"], spec["backend"], spec["score_mode"])
    scored = iter(score_rows(spec, asks, model_dir=model_dir, cache_dir=cache_dir))
    out_rows = []
    for r in rows:
        res = {a: next(scored) for a in ANSWERS}
        means = {a: mean_score(res[a]["scores"]) for a in ANSWERS}
        out_rows.append({"id": r["id"], "split": r.get("split"),
                         **{f"{a}_scores": res[a]["scores"] for a in ANSWERS},
                         **{f"{a}_mean": means[a] for a in ANSWERS},
                         "win": win(means["relevant"], means["off_topic"])})
    write_jsonl(out, out_rows)
    b = bootstrap_args(spec["bootstrap"])
    opts = {"n_boot": b["n"], "seed": b["seed"], "ci": b["ci"]}
    summ = {"judge": spec["model"], "score_mode": spec["score_mode"],
            "win_rate": summarize([r["win"] for r in out_rows], **opts),
            **{a: summarize([r[f"{a}_mean"] for r in out_rows], **opts) for a in ANSWERS}}
    write_json(summary, summ)
    w = summ["win_rate"]
    log.info("judge check: relevant ranked above off-topic on %s of %d rows (win rate %s)",
             sum(r["win"] == 1.0 for r in out_rows), len(out_rows),
             "n/a" if w["mean"] is None else f"{w['mean']:.3f}")
    return summ
