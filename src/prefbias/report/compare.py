"""Reported vs reproduced: ``<table>_vs_paper.{csv,md}``.

Numeric tables (stylized-dpo Tables 3-8) pair each reported cell with the reproduced mean by row
label and column: ``reported, reproduced, reproduced_std, ci_low, ci_high, difference``
(difference = reproduced − reported). Qualitative claims (saa-orpo Figures 2-5, stylized-dpo
Figure 3) are checked for direction per instruct model: ``holds`` is yes / no / n/a.
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


def numeric_vs_paper(name: str, df: pd.DataFrame) -> pd.DataFrame:
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
            })
    return pd.DataFrame.from_records(records)


def _s(v: float, digits: int = 3) -> str:
    return "N/A" if math.isnan(v) else f"{v:.{digits}f}"


def write_numeric(out_prefix: str | Path, name: str, df: pd.DataFrame) -> list[Path]:
    cmp = numeric_vs_paper(name, df)
    prefix = Path(out_prefix)
    header = ["Dataset", "Column", "Reported", "Reproduced", "Std (seeds)", "95% CI",
              "Difference"]
    body = []
    for _, r in cmp.iterrows():
        ci = ("" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        diff = "N/A" if math.isnan(r["difference"]) else f"{r['difference']:+.3f}"
        body.append([r["label"], r["column"], _s(r["reported"]), _s(r["reproduced"]),
                     "" if math.isnan(r["reproduced_std"]) else _s(r["reproduced_std"]), ci,
                     diff])
    caption = (f"{name}: reported (stylized-dpo) vs reproduced — "
               f"{paper.reported_table(name)['caption']}")
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md")]
    write_csv(paths[0], cmp)
    note = "Difference = reproduced − reported. N/A: not reported or not reproduced."
    extra = paper.reported_table(name).get("vs_paper_note")
    if extra:
        note += " Deliberate differences: " + extra
    return paths + write_md_html(paths[1], header, body, caption, note, n_left=2)[1:]


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
    return pd.DataFrame.from_records(records, columns=[
        "table", "label", "baseline", "column", "reported", "reproduced", "reproduced_std",
        "ci_low", "ci_high", "difference", "n_seeds"])


def write_pairs(out_prefix: str | Path, df: pd.DataFrame) -> list[Path]:
    cmp = pairs_vs_paper(df)
    prefix = Path(out_prefix)
    body = []
    for _, r in cmp.iterrows():
        ci = ("" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        body.append([r["label"], r["baseline"], _s(r["reported"]), _s(r["reproduced"]),
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
        n_left=2)[1:]


# ------------------------------------------------------------------------------------------------
# qualitative claims
# ------------------------------------------------------------------------------------------------
def _quantified(results: list[bool], quantifier: str) -> bool:
    if not results:
        return False
    if quantifier == "most":
        return sum(results) > len(results) / 2
    return all(results)


def _per_instruct(df: pd.DataFrame, col: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for _, r in df.iterrows():
        out.setdefault(r["instruct"], {})[r["label"]] = _f(r.get(col))
    return out


def check_claim(claim: dict[str, Any], *, answer: pd.DataFrame | None = None,
                ays: pd.DataFrame | None = None,
                judge: pd.DataFrame | None = None,
                dimensions: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows ``{claim, scope, detail, holds}``: one per instruct model plus an overall row."""
    kind = claim["kind"]
    base = {"id": claim["id"], "paper": claim["paper"], "figure": claim["figure"],
            "claim": claim["text"]}
    if kind == "not_checked":
        return [{**base, "scope": "overall", "detail": "qualitative, not machine-checked",
                 "holds": "n/a"}]
    rows: list[dict[str, Any]] = []
    if kind.startswith("judge"):
        if judge is None or not len(judge):
            return [{**base, "scope": "overall", "detail": "no judge results", "holds": "n/a"}]
        means = {r["label"]: [_f(r[d]) for d in dimensions] for _, r in judge.iterrows()}
        target = claim["label"]
        if target not in means:
            return [{**base, "scope": "overall", "detail": f"no row '{target}'", "holds": "n/a"}]
        if kind == "judge_best_of":
            pool = {k: v for k, v in means.items() if k in claim["among"]}
            avg = {k: sum(v) / len(v) for k, v in pool.items()}
            best = max(avg, key=avg.get)
            detail = ", ".join(f"{k}={v:.3f}" for k, v in avg.items())
            return [{**base, "scope": "overall", "detail": f"mean over dimensions: {detail}",
                     "holds": "yes" if best == target else "no"}]
        cmp = operator.gt if kind == "judge_best" else operator.lt
        ok_all = []
        for i, d in enumerate(dimensions):
            others = [v[i] for k, v in means.items() if k != target]
            ok = all(cmp(means[target][i], o) for o in others)
            ok_all.append(ok)
            rows.append({**base, "scope": d,
                         "detail": f"{target}={means[target][i]:.3f}; others "
                                   + ", ".join(f"{o:.3f}" for o in others),
                         "holds": "yes" if ok else "no"})
        rows.append({**base, "scope": "overall", "detail": "every dimension",
                     "holds": "yes" if all(ok_all) else "no"})
        return rows

    table = answer if kind.startswith("answer") else ays
    if table is None or not len(table):
        return [{**base, "scope": "overall", "detail": "no results", "holds": "n/a"}]
    col = claim.get("template", "revision_rate") if kind.startswith("answer") else "revision_rate"
    if col not in table.columns:
        return [{**base, "scope": "overall", "detail": f"no column '{col}'", "holds": "n/a"}]
    values = _per_instruct(table, col)
    names = dict(zip(table["instruct"], table["model"], strict=True)) if "model" in table else {}
    excepted = set(claim.get("except", []))
    results: list[bool] = []
    for inst, by_label in values.items():
        name = names.get(inst, inst)
        if kind == "answer_sign":
            variants = claim["variant"]
            variants = variants if isinstance(variants, list) else [variants]
            vals = [by_label.get(v, math.nan) for v in variants]
            if any(math.isnan(v) for v in vals):
                continue
            ok = all(v * claim["sign"] > 0 for v in vals)
            detail = ", ".join(f"{v}={x:+.3f}" for v, x in zip(variants, vals, strict=True))
        else:
            a, b = by_label.get(claim["a"], math.nan), by_label.get(claim["b"], math.nan)
            if math.isnan(a) or math.isnan(b):
                continue
            ok = OPS[claim["op"]](a, b)
            detail = f"{claim['a']}={a:.3f} {claim['op']} {claim['b']}={b:.3f}"
        if inst in excepted:
            rows.append({**base, "scope": name, "detail": detail + " (paper: exception)",
                         "holds": "yes" if not ok else "no (exception)"})
            continue
        results.append(ok)
        rows.append({**base, "scope": name, "detail": detail, "holds": "yes" if ok else "no"})
    quant = claim.get("quantifier", "all")
    rows.append({**base, "scope": "overall",
                 "detail": f"{sum(results)}/{len(results)} models ({quant})",
                 "holds": ("yes" if _quantified(results, quant) else "no") if results else "n/a"})
    return rows


def write_claims(out_prefix: str | Path, claims: Sequence[dict[str, Any]],
                 caption: str, **tables: Any) -> list[Path]:
    rows: list[dict[str, Any]] = []
    for c in claims:
        rows += check_claim(c, **tables)
    df = pd.DataFrame.from_records(rows, columns=["id", "paper", "figure", "claim", "scope",
                                                  "detail", "holds"])
    prefix = Path(out_prefix)
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md")]
    write_csv(paths[0], df)
    body = [[r["figure"], r["claim"], r["scope"], r["detail"], r["holds"]]
            for _, r in df.iterrows()]
    return paths + write_md_html(paths[1], ["Figure", "Reported (paper text)", "Scope",
                                            "Reproduced", "Holds"], body, caption,
                                 "The paper reports these results as plots only; its text's "
                                 "qualitative statements are checked for direction.",
                                 n_left=5)[1:]
