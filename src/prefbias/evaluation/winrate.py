"""HELM's mean win rate (crfm-helm 0.5.16 ``helm-summarize``), for tables of models × columns.

Per column, over the models that have a value there, a model's win rate is
``(#models strictly worse + (#ties including itself - 1) / 2) / (N - 1)``; its mean win rate is
the average over the columns where it has a value (missing cells are excluded, not counted as
losses). Ties count half. With ``lower_is_better`` (calibration: ECE) "worse" means larger.
The paper's Tables 4-8 (stylized-dpo App. C.1) follow this exactly, e.g. Table 5's accuracies give
.28 .78 .56 .40 .30 .68.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def column_win_rates(values: Sequence[float | None], *, lower_is_better: bool = False
                     ) -> list[float | None]:
    """Win rate of each entry within one column; ``None`` for missing cells (and when only one
    model has a value there is nothing to compare against: ``None`` too)."""
    present = [float(v) for v in values if _present(v)]
    n = len(present)
    out: list[float | None] = []
    for v in values:
        if not _present(v) or n < 2:
            out.append(None)
            continue
        v = float(v)
        worse = sum(1 for o in present if (o > v if lower_is_better else o < v))
        ties = sum(1 for o in present if o == v)  # includes v itself
        out.append((worse + (ties - 1) / 2) / (n - 1))
    return out


def mean_win_rates(table: Mapping[str, Mapping[str, float | None]], columns: Sequence[str], *,
                   lower_is_better: bool = False) -> dict[str, float | None]:
    """``table[row][column] -> value``; returns ``{row: mean win rate or None}``."""
    rows = list(table)
    per_col = {c: column_win_rates([table[r].get(c) for r in rows],
                                   lower_is_better=lower_is_better) for c in columns}
    out: dict[str, float | None] = {}
    for i, r in enumerate(rows):
        rates = [per_col[c][i] for c in columns if per_col[c][i] is not None]
        out[r] = sum(rates) / len(rates) if rates else None
    return out


def add_mean_win_rate(df, columns: Sequence[str] | None = None, *, lower_is_better: bool = False,
                      name: str = "mean_win_rate"):
    """Return a copy of a pandas DataFrame (one row per model) with a mean win rate column
    computed over ``columns`` (default: every numeric column)."""
    import pandas as pd

    if columns is None:
        columns = [c for c in df.columns if c != name and pd.api.types.is_numeric_dtype(df[c])]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in table: {', '.join(missing)}")
    table = {i: {c: (None if pd.isna(df.at[i, c]) else float(df.at[i, c])) for c in columns}
             for i in df.index}
    rates = mean_win_rates(table, columns, lower_is_better=lower_is_better)
    out = df.copy()
    out[name] = [rates[i] for i in df.index]
    return out


# ------------------------------------------------------------------------------------------------
# reward-model win rate: the pairs scored are planned in prefbias.plan (resolve_pairs)
# ------------------------------------------------------------------------------------------------
