"""Aggregation of per-model values into table rows: one row per label (per instruct model and
label for saa-orpo), mean and std over seeds, CI bounds averaged over seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from prefbias.plan import dedupe
from prefbias.report.statistics import mean_std, num


def aggregate(rows: Sequence[dict[str, Any]], values: Callable[[dict[str, Any]], dict[str, Any]],
              *, key: Sequence[str] = ("label",), columns: Sequence[str],
              ci_columns: Sequence[str] = ()) -> pd.DataFrame:
    """One output row per ``key`` (first-appearance order), mean/std over its (unique) models.

    ``values(row)`` returns ``{col: x, f"{col}_ci_low": .., f"{col}_ci_high": ..}`` for one model.
    The CSV carries ``<col>`` (mean over seeds), ``<col>_std`` (sample std over seeds, NaN with
    one seed) and for ``ci_columns`` ``<col>_ci_low``/``<col>_ci_high`` (the mean of the per-seed
    bounds); ``n_seeds`` counts the models aggregated into a row, ``models`` lists their ids;
    a row whose models are marked ``not_run`` (:func:`prefbias.plan.eval_skipped`) carries the
    reason in ``not_run`` (the column exists only when some row has one).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in dedupe(rows):
        groups.setdefault(tuple(r.get(k) for k in key), []).append(r)
    records = []
    for k, members in groups.items():
        got = [values(m) for m in members]
        rec: dict[str, Any] = dict(zip(key, k, strict=True))
        rec["n_seeds"] = len(members)
        rec["models"] = ";".join(m["id"] for m in members)
        why = [m["not_run"] for m in members if m.get("not_run")]
        if why:  # prefbias.plan.eval_skipped: no evaluation of these models was planned
            rec["not_run"] = why[0]
        for col in columns:
            rec[col], rec[f"{col}_std"] = mean_std([num(g.get(col)) for g in got])
            if col in ci_columns:
                rec[f"{col}_ci_low"] = mean_std([num(g.get(f"{col}_ci_low")) for g in got])[0]
                rec[f"{col}_ci_high"] = mean_std([num(g.get(f"{col}_ci_high")) for g in got])[0]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def paper_order(df: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Stable-sort rows into the paper's row order; labels the paper lacks keep their place last."""
    rank = {lab: i for i, lab in enumerate(labels)}
    order = sorted(range(len(df)), key=lambda i: (rank.get(df["label"].iloc[i], len(rank)), i))
    return df.iloc[order].reset_index(drop=True)


def instruct_names(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """instruct model id -> its display name (what ran), from saa-orpo rows."""
    return {r["instruct"]: r.get("instruct_display") or r["instruct"] for r in rows}
