"""``prefbias winrate``: add HELM's mean win rate to a models × columns CSV table."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "winrate",
        help="print a models x columns CSV with HELM's mean win rate (ties half, missing "
             "cells excluded)",
        description=__doc__,
    )
    p.add_argument("table", help="CSV: one row per model; numeric columns are scored")
    p.add_argument("--columns", nargs="+", default=None,
                   help="columns to score (default: every numeric column)")
    p.add_argument("--lower-is-better", action="store_true",
                   help="smaller values win (e.g. calibration error)")
    p.add_argument("--output", "-o", default=None, help="write CSV here instead of stdout")
    p.add_argument("--digits", type=int, default=3, help="rounding of the win rate column")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from prefbias.evaluation.winrate import add_mean_win_rate
    from prefbias.io import DataError, atomic_open

    try:
        df = pd.read_csv(args.table)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(args.table, f"cannot read CSV: {e}") from e
    try:
        out = add_mean_win_rate(df, args.columns, lower_is_better=args.lower_is_better)
    except KeyError as e:
        raise DataError(args.table, str(e.args[0])) from e
    if "mean_win_rate" not in df.columns:  # else recomputed in place
        cols = list(out.columns)
        cols.remove("mean_win_rate")
        first_num = next((i for i, c in enumerate(cols) if c in (args.columns or cols)
                          and pd.api.types.is_numeric_dtype(out[c])), len(cols))
        cols.insert(first_num, "mean_win_rate")
        out = out[cols]
    out["mean_win_rate"] = out["mean_win_rate"].round(args.digits)
    if args.output:
        with atomic_open(args.output) as fh:
            out.to_csv(fh, index=False)
    else:
        out.to_csv(sys.stdout, index=False)
    return 0
