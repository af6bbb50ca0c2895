"""Reported vs reproduced: ``<table>_vs_paper.{csv,md}``.

Numeric tables (stylized-dpo Tables 3-8) pair each reported cell with the reproduced mean by row
label and column: ``reported, reproduced, reproduced_std, ci_low, ci_high, difference``
(difference = reproduced − reported). Qualitative claims (saa-orpo Figures 2-5, stylized-dpo
Figure 3) are decided per instruct model from the CIs: ``holds`` is holds / contradicted /
inconclusive / n/a (:data:`DECISION_RULE`), beside the interval it rests on.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prefbias.report import paper
from prefbias.report.render import write_csv, write_md_html

OPS = {">": operator.gt, "<": operator.lt}


def _f(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


N_OF = {"validation_loss": "n_validation", "validation_accuracy": "n_validation",
        "win_rate": "n_prompts"}  # else a HELM table's n_instances


def numeric_vs_paper(name: str, df: pd.DataFrame,
                     not_run_cols: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per reported cell; ``not_run`` (with a ``not_run`` column in ``df``): why a cell
    of ``not_run_cols`` (None: every column) has no reproduced value
    (:func:`prefbias.plan.eval_skipped`)."""
    rep = paper.reported_table(name)
    by_label = {r["label"]: r for _, r in df.iterrows()}
    records = []
    for label, values in rep["rows"].items():
        got = by_label.get(label)
        for col, reported in zip(rep["columns"], values, strict=True):
            reproduced = _f(got.get(col)) if got is not None else math.nan
            records.append({
                "table": name, "label": label, "column": col, "reported": _f(reported),
                "reproduced": reproduced,
                "reproduced_std": _f(got.get(f"{col}_std")) if got is not None else math.nan,
                "ci_low": _f(got.get(f"{col}_ci_low")) if got is not None else math.nan,
                "ci_high": _f(got.get(f"{col}_ci_high")) if got is not None else math.nan,
                "difference": reproduced - _f(reported),
                "n_seeds": int(got["n_seeds"]) if got is not None else 0,
                "n": _f(got.get(N_OF.get(col, "n_instances"))) if got is not None else math.nan,
            })
            why = got.get("not_run") if got is not None else None
            if "not_run" in df:
                records[-1]["not_run"] = (why if isinstance(why, str) and why and math.isnan(
                    reproduced) and (not_run_cols is None or col in not_run_cols) else "")
    return pd.DataFrame.from_records(records)


def _s(v: float, digits: int = 3) -> str:
    return "N/A" if math.isnan(v) else f"{v:.{digits}f}"


def write_numeric(out_prefix: str | Path, name: str, df: pd.DataFrame, *,
                  notice: str = "", not_run_cols: Sequence[str] | None = None) -> list[Path]:
    """``notice`` (what ran: stand-ins, random weights) heads the md/html and fills the CSV's
    ``notice`` column, so the file read alone says what it compares."""
    cmp = numeric_vs_paper(name, df, not_run_cols)
    cmp["notice"] = notice
    prefix = Path(out_prefix)
    header = ["Dataset", "Column", "Reported", "Reproduced", "Std (seeds)", "95% CI",
              "Difference", "n"]
    body = []
    for _, r in cmp.iterrows():
        ci = ("" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        diff = "N/A" if math.isnan(r["difference"]) else f"{r['difference']:+.3f}"
        got = r.get("not_run") or _s(r["reproduced"])  # not run: why, not "N/A"
        body.append([r["label"], r["column"], _s(r["reported"]), got,
                     "" if math.isnan(r["reproduced_std"]) else _s(r["reproduced_std"]), ci,
                     diff, "" if math.isnan(r["n"]) else f"{r['n']:.0f}"])
    caption = (f"{name}: reported (stylized-dpo) vs reproduced — "
               f"{paper.reported_table(name)['caption']}")
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md")]
    write_csv(paths[0], cmp)
    note = ("Difference = reproduced − reported. N/A: not reported or not reproduced. n: the "
            "rows the reproduced value rests on (held-out examples, prompts, HELM instances).")
    extra = paper.reported_table(name).get("vs_paper_note")
    if extra:
        note += " Deliberate differences: " + extra
    return paths + write_md_html(paths[1], header, body, caption, note, n_left=2,
                                 notice=notice)[1:]


def pairs_vs_paper(df: pd.DataFrame) -> pd.DataFrame:
    """``table3_pairs`` beside the paper: a pair against the base model ("Qwen 2.5 0.5B") is
    Table 3's win rate of its model; the paper reports no other pair (reported = NaN)."""
    t3 = paper.reported_table("table3")
    col = t3["columns"].index("win_rate")
    base = paper.row_order("table4")[0]  # the base model's label in the paper's tables
    records = []
    for _, r in df.iterrows():
        reported = math.nan
        if r["baseline_label"] == base and r["label"] in t3["rows"]:
            reported = _f(t3["rows"][r["label"]][col])
        reproduced = _f(r.get("win_rate"))
        records.append({"table": "table3_pairs", "label": r["label"],
                        "baseline": r["baseline_label"], "column": "win_rate",
                        "reported": reported, "reproduced": reproduced,
                        "reproduced_std": _f(r.get("win_rate_std")),
                        "ci_low": _f(r.get("win_rate_ci_low")),
                        "ci_high": _f(r.get("win_rate_ci_high")),
                        "difference": reproduced - reported, "n_seeds": int(r["n_seeds"])})
        why = r.get("not_run")
        if "not_run" in df:
            records[-1]["not_run"] = why if isinstance(why, str) and why else ""
    cols = ["table", "label", "baseline", "column", "reported", "reproduced", "reproduced_std",
            "ci_low", "ci_high", "difference", "n_seeds"]
    return pd.DataFrame.from_records(records, columns=cols + (["not_run"] if "not_run" in df
                                                              else []))


def write_pairs(out_prefix: str | Path, df: pd.DataFrame, *, notice: str = "") -> list[Path]:
    cmp = pairs_vs_paper(df)
    cmp["notice"] = notice
    prefix = Path(out_prefix)
    body = []
    for _, r in cmp.iterrows():
        ci = ("" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        got = r.get("not_run") or _s(r["reproduced"])  # not run: why, not "N/A"
        body.append([r["label"], r["baseline"], _s(r["reported"]), got,
                     "" if math.isnan(r["reproduced_std"]) else _s(r["reproduced_std"]), ci,
                     "N/A" if math.isnan(r["difference"]) else f"{r['difference']:+.3f}"])
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md")]
    write_csv(paths[0], cmp)
    note = ("Difference = reproduced − reported. N/A: not reported or not reproduced. "
            + paper.load()["table3_pairs"]["vs_paper_note"])
    return paths + write_md_html(
        paths[1],
        ["Model", "Baseline", "Reported", "Reproduced", "Std (seeds)", "95% CI", "Difference"],
        body, "table3_pairs: reported (stylized-dpo) vs reproduced reward win rates", note,
        n_left=2, notice=notice)[1:]


# ------------------------------------------------------------------------------------------------
# qualitative claims
# ------------------------------------------------------------------------------------------------
HOLDS, CONTRADICTED, INCONCLUSIVE, NA = "holds", "contradicted", "inconclusive", "n/a"
DECISION_RULE = (
    "Each comparison is decided from the 95% CIs, not the point estimates: a > b holds when a's "
    "CI lies wholly above b's, is contradicted when it lies wholly below, and is inconclusive "
    "when the two overlap (a conservative test: disjoint 95% CIs mean p < 0.01); a sign claim "
    "holds or is contradicted when the CI excludes 0, else it is inconclusive. A value resting "
    "on fewer than the configured minimum of rows (report.min_n) is inconclusive. "
    "'Point estimates' says only which way the means point.")


def _iv(lo: float, hi: float) -> str:
    return "[N/A]" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.3f}, {hi:.3f}]"


def compare_intervals(a: tuple[float, float, float], b: tuple[float, float, float],
                      op: str) -> str:
    """``a op b`` for two ``(estimate, ci_low, ci_high)``: holds / contradicted / inconclusive
    from the CIs (disjoint in the claimed direction / the other / overlapping); n/a when an
    estimate is missing. A missing CI is inconclusive: a point estimate decides nothing."""
    (_, alo, ahi), (_, blo, bhi) = a, b
    if math.isnan(a[0]) or math.isnan(b[0]):
        return NA
    if any(math.isnan(x) for x in (alo, ahi, blo, bhi)):
        return INCONCLUSIVE
    above, below = alo > bhi, ahi < blo
    if op == "<":
        above, below = below, above
    return HOLDS if above else CONTRADICTED if below else INCONCLUSIVE


def sign_outcome(est: tuple[float, float, float], sign: int) -> str:
    """``sign * x > 0`` from the CI of x: holds / contradicted when it excludes 0."""
    return compare_intervals(est, (0.0, 0.0, 0.0), ">" if sign > 0 else "<")


def _combine(outcomes: list[str], quantifier: str) -> str:
    """Per-model outcomes -> the claim's: ``all`` holds when every model's holds, is
    contradicted when any model's is; ``most`` holds when more than half hold, is contradicted
    when at most half could hold even if every inconclusive one did."""
    if not outcomes:
        return NA
    n, k_hold, k_contra = len(outcomes), outcomes.count(HOLDS), outcomes.count(CONTRADICTED)
    if quantifier == "most":
        if k_hold > n / 2:
            return HOLDS
        return CONTRADICTED if n - k_contra <= n / 2 else INCONCLUSIVE
    if k_contra:
        return CONTRADICTED
    return HOLDS if k_hold == n else INCONCLUSIVE


def _direction(ok: bool) -> str:
    return "as claimed" if ok else "opposite"


def _est(row: dict[str, float], col: str) -> tuple[float, float, float]:
    return (row.get(col, math.nan), row.get(f"{col}_ci_low", math.nan),
            row.get(f"{col}_ci_high", math.nan))


def _per_instruct(df: pd.DataFrame, col: str, ncol: str | None, min_n: int
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """instruct -> label -> ``{col, col_ci_low, col_ci_high}``; a value resting on fewer than
    ``min_n`` rows keeps its estimate but loses its CI (so it decides nothing)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for _, r in df.iterrows():
        cell = {k: _f(r.get(k)) for k in (col, f"{col}_ci_low", f"{col}_ci_high")}
        n = _f(r.get(ncol)) if ncol else math.nan
        cell["n"] = n
        if ncol and not math.isnan(n) and n < min_n:
            cell[f"{col}_ci_low"] = cell[f"{col}_ci_high"] = math.nan
        out.setdefault(r["instruct"], {})[r["label"]] = cell
    return out


def _n_text(cell: dict[str, float], min_n: int) -> str:
    n = cell.get("n", math.nan)
    if math.isnan(n):
        return ""
    return f" (n={n:.0f}" + (f" below {min_n}: too few" if n < min_n else "") + ")"


def check_claim(claim: dict[str, Any], *, answer: pd.DataFrame | None = None,
                ays: pd.DataFrame | None = None,
                judge: pd.DataFrame | None = None,
                dimensions: Sequence[str] = (), min_n: int = 0) -> list[dict[str, Any]]:
    """Rows ``{claim, scope, detail, evidence, point_estimates, holds}``: one per instruct model
    (per dimension for the judge) plus an overall row. ``holds`` is holds / contradicted /
    inconclusive / n/a, decided from the CIs (:data:`DECISION_RULE`); ``point_estimates`` (as
    claimed / opposite) is what the means alone say."""
    kind = claim["kind"]
    base = {"id": claim["id"], "paper": claim["paper"], "figure": claim["figure"],
            "claim": claim["text"]}

    def row(scope: str, detail: str, holds: str, evidence: str = "", point: str = ""):
        return {**base, "scope": scope, "detail": detail, "evidence": evidence,
                "point_estimates": point, "holds": holds}

    if kind == "not_checked":
        return [row("overall", "qualitative, not machine-checked", NA)]
    rows: list[dict[str, Any]] = []
    if kind.startswith("judge"):
        why: list[str] = []
        if judge is not None and "not_run" in judge:  # prefbias.plan.eval_skipped: no scores
            skipped = [isinstance(v, str) and bool(v) for v in judge["not_run"]]
            why = [v for v, s in zip(judge["not_run"], skipped, strict=True) if s]
            judge = judge[[not s for s in skipped]]
        if judge is None or not len(judge):
            return [row("overall", f"no judge results ({why[0]})" if why else
                        "no judge results", NA)]
        cells = {r["label"]: {d: _est({k: _f(r.get(k)) for k in (d, f"{d}_ci_low",
                                                                  f"{d}_ci_high")}, d)
                              for d in dimensions} for _, r in judge.iterrows()}
        few = {d: min((_f(r.get(f"{d}_n")) for _, r in judge.iterrows()), default=math.nan)
               for d in dimensions}
        few = {d: n for d, n in few.items() if not math.isnan(n) and n < min_n}
        if few:  # a CI over too few prompts decides nothing
            for v in cells.values():
                for d in few:
                    v[d] = (v[d][0], math.nan, math.nan)
        target = claim["label"]
        if target not in cells:
            return [row("overall", f"no row '{target}'", NA)]
        if kind == "judge_best_of":
            # mean over dimensions; its CI approximated by the mean of the bounds
            pool = {k: v for k, v in cells.items() if k in claim["among"]}
            avg = {k: tuple(sum(v[d][i] for d in dimensions) / len(dimensions)
                            for i in range(3)) for k, v in pool.items()}
            others = [k for k in avg if k != target]
            outs = [compare_intervals(avg[target], avg[o], ">") for o in others]
            point = _direction(all(avg[target][0] > avg[o][0] for o in others))
            detail = ", ".join(f"{k}={v[0]:.3f}" for k, v in avg.items())
            if few:
                detail += f" (n={min(few.values()):.0f} below {min_n}: too few)"
            evidence = ", ".join(f"{k} {_iv(v[1], v[2])}" for k, v in avg.items())
            return [row("overall", f"mean over dimensions: {detail}", _combine(outs, "all"),
                        "CI (mean of the dimensions' bounds): " + evidence, point)]
        op = ">" if kind == "judge_best" else "<"
        per_dim = []
        for d in dimensions:
            others = {k: v[d] for k, v in cells.items() if k != target}
            t = cells[target][d]
            outs = [compare_intervals(t, o, op) for o in others.values()]
            outcome = _combine(outs, "all")
            per_dim.append(outcome)
            point = _direction(all(OPS[op](t[0], o[0]) for o in others.values()))
            n_note = f" (n={few[d]:.0f} below {min_n}: too few)" if d in few else ""
            rows.append(row(d, f"{target}={t[0]:.3f}; others "
                            + ", ".join(f"{o[0]:.3f}" for o in others.values()) + n_note,
                            outcome,
                            f"{target} {_iv(t[1], t[2])}; " + ", ".join(
                                f"{k} {_iv(o[1], o[2])}" for k, o in others.items()), point))
        rows.append(row("overall", "every dimension", _combine(per_dim, "all")))
        return rows

    table = answer if kind.startswith("answer") else ays
    if table is None or not len(table):
        return [row("overall", "no results", NA)]
    col = claim.get("template", "revision_rate") if kind.startswith("answer") else "revision_rate"
    if col not in table.columns:
        return [row("overall", f"no column '{col}'", NA)]
    ncol = "n" if kind.startswith("answer") else "n_evaluable"
    values = _per_instruct(table, col, ncol if ncol in table.columns else None, min_n)
    names = dict(zip(table["instruct"], table["model"], strict=True)) if "model" in table else {}
    excepted = set(claim.get("except", []))
    outcomes: list[str] = []
    for inst, by_label in values.items():
        name = names.get(inst, inst)
        if kind == "answer_sign":
            variants = claim["variant"]
            variants = variants if isinstance(variants, list) else [variants]
            cells = [by_label.get(v, {}) for v in variants]
            ests = [_est(c, col) for c in cells]
            if any(math.isnan(e[0]) for e in ests):
                floor = [v for v, c in zip(variants, cells, strict=True) if c]
                if floor and inst not in excepted:
                    rows.append(row(name, "no score (" + ", ".join(floor) + "): "
                                "not evaluable, e.g. a model at the floor (never correct)", NA))
                continue
            outs = [sign_outcome(e, claim["sign"]) for e in ests]
            outcome = _combine(outs, "all")
            point = _direction(all(e[0] * claim["sign"] > 0 for e in ests))
            detail = ", ".join(f"{v}={e[0]:+.3f}{_n_text(c, min_n)}"
                               for v, e, c in zip(variants, ests, cells, strict=True))
            evidence = ", ".join(f"{v} {_iv(e[1], e[2])}"
                                 for v, e in zip(variants, ests, strict=True))
        else:
            ca, cb = by_label.get(claim["a"], {}), by_label.get(claim["b"], {})
            a, b = _est(ca, col), _est(cb, col)
            if math.isnan(a[0]) or math.isnan(b[0]):
                continue
            outcome = compare_intervals(a, b, claim["op"])
            point = _direction(OPS[claim["op"]](a[0], b[0]))
            detail = (f"{claim['a']}={a[0]:.3f}{_n_text(ca, min_n)} {claim['op']} "
                      f"{claim['b']}={b[0]:.3f}{_n_text(cb, min_n)}")
            evidence = f"{claim['a']} {_iv(a[1], a[2])}, {claim['b']} {_iv(b[1], b[2])}"
        if inst in excepted:  # the paper reports the opposite for this model
            flip = {HOLDS: "no (exception: the claim holds here)",
                    CONTRADICTED: "yes (exception reproduced)"}.get(outcome, outcome)
            rows.append(row(name, detail + " (paper: exception)", flip, evidence, point))
            continue
        outcomes.append(outcome)
        rows.append(row(name, detail, outcome, evidence, point))
    quant = claim.get("quantifier", "all")
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in (HOLDS, CONTRADICTED, INCONCLUSIVE)
                       if outcomes.count(o))
    rows.append(row("overall", f"{len(outcomes)} models ({quant}): {counts or 'none'}",
                    _combine(outcomes, quant)))
    return rows


CLAIM_COLUMNS = ["id", "paper", "figure", "claim", "scope", "detail", "evidence",
                 "point_estimates", "holds"]


def write_claims(out_prefix: str | Path, claims: Sequence[dict[str, Any]],
                 caption: str, *, notice: str = "", **tables: Any) -> list[Path]:
    rows: list[dict[str, Any]] = []
    for c in claims:
        rows += check_claim(c, **tables)
    df = pd.DataFrame.from_records(rows, columns=CLAIM_COLUMNS)
    df["notice"] = notice
    prefix = Path(out_prefix)
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md")]
    write_csv(paths[0], df)
    body = [[r["figure"], r["claim"], r["scope"], r["detail"], r["evidence"],
             r["point_estimates"], r["holds"]] for _, r in df.iterrows()]
    return paths + write_md_html(paths[1], ["Figure", "Paper's claim", "Scope",
                                            "Reproduced", "95% CI", "Point estimates",
                                            "Outcome"], body, caption,
                                 "The paper reports these results as plots only; its text's "
                                 "qualitative statements are checked here. " + DECISION_RULE,
                                 n_left=7, notice=notice)[1:]
