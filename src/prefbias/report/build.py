"""One report item from its spec: ``build_table`` writes ``<prefix>.{csv,md,html,tex}`` and
``<prefix>_vs_paper.{csv,md,html}``, ``build_figure`` writes ``<prefix>.{png,pdf}``. Every table
carries the n its cells rest on (below ``min_n``: marked "too few"), every ``_vs_paper`` file the
stand-in notice.

``spec`` is :func:`prefbias.plan.report_spec`: ``rows`` (every seed), ``notice`` (what the numbers
are built from: random-weight or other stand-ins, joined to every caption) and, per item,
``dimensions`` (judge), ``templates`` (sycophancy answer templates, ``[key, template]`` pairs in
the config's order) or ``bootstrap``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prefbias.evaluation.judge import SCORE_MODES
from prefbias.plan import FIGURES, HELM_TABLES, TABLES

log = logging.getLogger("prefbias.report")

SAA_FIGURES = {
    "saa_figure2": ("answer", ("non-aligned", "aligned"),
                    "Answer Suggestion: non-aligned vs aligned models"),
    "saa_figure3": ("ays", ("non-aligned", "aligned"),
                    "Are You Sure: non-aligned vs aligned models"),
    "saa_figure4": ("answer", ("aligned", "aligned-SAA"),
                    "Answer Suggestion: aligned vs aligned-SAA models"),
    "saa_figure5": ("ays", ("aligned", "aligned-SAA"),
                    "Are You Sure: aligned vs aligned-SAA models"),
}


class SpecError(ValueError):
    """A report spec lacks what its item needs."""


def _need(spec: dict[str, Any], key: str, name: str) -> Any:
    if not spec.get(key):
        raise SpecError(f"report item {name}: spec key '{key}' is required")
    return dict(spec[key]) if key == "templates" else spec[key]  # [key, template] pairs


def _count(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "N/A"
    return "N/A" if math.isnan(f) else f"{f:.0f}"


def shown(df: pd.DataFrame, value_cols: Sequence[str], n_of: dict[str, str], min_n: int,
          count_cols: Sequence[str] = (), floor: Sequence[str] = ()) -> tuple[pd.DataFrame,
                                                                            pd.DataFrame]:
    """``(csv, display)`` frames of a table. ``n_of`` maps a value column to the column of the n
    it rests on: below ``min_n`` its cell reads "… (n=k < min_n: too few)" and the CSV gets
    ``<col>_too_few``; ``count_cols`` display as integers; a ``floor`` column whose
    ``<col>_floor`` is set reads "at floor: never correct" (no score, not "no effect")."""
    from prefbias.report.render import fmt_cell

    csv, disp = df.copy(), df.copy().astype(object)
    for col in value_cols:
        ncol = n_of.get(col)
        if ncol and ncol in df:
            csv[f"{col}_too_few"] = [bool(not math.isnan(float(n)) and float(n) < min_n)
                                     if n is not None else False for n in df[ncol]]
        for i, r in df.iterrows():
            cell = fmt_cell(r, col)
            if col in floor and float(r.get(f"{col}_floor") or 0) > 0:
                cell = "at floor: never correct"
            elif ncol and ncol in df and bool(csv.at[i, f"{col}_too_few"]):
                cell += f" (n={_count(r[ncol])} below {min_n}: too few)"
            disp.at[i, col] = cell
    for col in count_cols:
        if col in df:
            disp[col] = [_count(v) for v in df[col]]
    return csv, disp


def build_table(name: str, results: str | Path, spec: dict[str, Any],
                out_prefix: str | Path) -> None:
    """Write one paper table and its reported-vs-reproduced companion."""
    from prefbias.report import compare, paper, render, tables
    from prefbias.report.aggregate import paper_order

    if name not in TABLES:
        raise SpecError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
    R, rows, notice = results, spec["rows"], spec["notice"]
    min_n = int(spec.get("min_n", 0))
    prefix = Path(out_prefix)
    vs = prefix.with_name(prefix.name + "_vs_paper")

    def write(df, index_cols, value_cols, caption, *, n_of=None, counts=(), floor=(), **kw):
        csv, disp = shown(df, value_cols, n_of or {}, min_n, counts, floor)
        render.write_table(prefix, disp, index_cols, [*value_cols, *counts], caption,
                           notice=notice, **kw)
        render.write_csv(prefix.with_suffix(".csv"), csv)  # numbers, not display strings

    if name in ("table3", "table4", *HELM_TABLES):
        if name == "table3":
            df = tables.table3(R, rows, spec["bootstrap"])
        elif name == "table4":
            df = tables.table4(R, rows)
        else:
            df = tables.helm_table(R, rows, HELM_TABLES[name])
        rep = paper.reported_table(name)
        df = paper_order(df, paper.row_order(name))
        caption, note = rep["caption"], ""
        n_of: dict[str, str] = {}
        counts: tuple[str, ...] = ()
        if name == "table3":
            counts = ("n_validation", "n_prompts")
            n_of = {"validation_loss": "n_validation", "validation_accuracy": "n_validation",
                    "win_rate": "n_prompts"}
            n_prompts = tables.reward_prompt_counts(R, rows)
            if len(n_prompts) == 1:  # the paper's caption, with this run's number of prompts
                caption = rep["caption_reproduced"].format(n=n_prompts[0])
            note = ("Win rate: vs the base model; validation loss and accuracy: on the held-out "
                    "preference pairs (SFT: loss per token); 95% bootstrap CI in brackets. "
                    "n: held-out examples (SFT conversations, DPO pairs) and win-rate prompts.")
        elif name in HELM_TABLES:
            note = "95% bootstrap CI over the scenario's instances in brackets."
        if (name in HELM_TABLES or name == "table4") and spec.get("helm_instances"):
            df["n_instances"] = int(spec["helm_instances"])
            counts = ("n_instances",)
            n_of = {c: "n_instances" for c in rep["columns"]}
            note += (f" n: instances per scenario, at most {spec['helm_instances']} "
                     "(helm.max_eval_instances; MMLU: per subject).")
        write(df, ["label"], list(rep["columns"]), caption, n_of=n_of, counts=counts,
              note=note.strip(), titles={"n_validation": "n (validation)",
                                         "n_prompts": "n (prompts)",
                                         "n_instances": "n (instances)"})
        compare.write_numeric(vs, name, df, notice=notice)
    elif name == "table3_pairs":  # rows: prefbias.plan.reward_pair_rows
        df = tables.reward_pairs_table(R, rows)
        ns = sorted({int(n) for n in df["n_prompts"].dropna()}) if len(df) else []
        caption = paper.load()["table3_pairs"]["caption"].format(
            n=ns[0] if len(ns) == 1 else "/".join(map(str, ns)) or "no")
        note = ("Each model's generations against its baseline's on the same prompts, scored by "
                "the reward model; 95% bootstrap CI over prompts in brackets; ties count one "
                "half. Table 3 holds every model against the base model."
                if len(df) else "No pairs configured (config reward_winrate.pairs).")
        write(df, ["label", "baseline_label"], ["win_rate"], caption,
              n_of={"win_rate": "n_prompts"}, counts=("n_prompts",), note=note,
              titles={"label": "Model", "n_prompts": "n (prompts)"})
        compare.write_pairs(vs, df, notice=notice)
    elif name == "judge_scores":
        dims = _need(spec, "dimensions", name)
        df = tables.judge_table(R, rows, dims)
        mode = SCORE_MODES[_need(spec, "judge_mode", name)]
        write(df, ["label"], dims,
              f"LLM judge scores (1-5; {mode}): mean [95% bootstrap CI over prompts]",
              n_of={d: f"{d}_n" for d in dims}, counts=(f"{dims[0]}_n",),
              titles={d: d.capitalize() for d in dims} | {f"{dims[0]}_n": "n (prompts)"})
        compare.write_claims(vs, paper.claims(figure="figure3", paper="stylized-dpo"),
                             "LLM judge (stylized-dpo Figure 3): reported claims vs reproduced",
                             judge=df, dimensions=dims, min_n=min_n, notice=notice)
    elif name == "judge_check":  # rows: prefbias.plan.report_rows (the judge, or none)
        df = tables.judge_check_table(R, rows)
        mode = SCORE_MODES[_need(spec, "judge_mode", name)]
        note = ("Per hand-made row the judge scores a relevant and an off-topic answer to the "
                f"same prompt ({mode}); the relevant one wins when its mean over the dimensions "
                "is higher (ties count one half). 95% bootstrap CI over rows in brackets."
                if len(df) else "No judge check set configured (config judge.check_set).")
        render.write_table(prefix, df, ["label", "n"], ["win_rate", "relevant", "off_topic"],
                           "Judge check: how often the judge ranks a relevant answer above an "
                           "off-topic one", note=note,
                           titles={"label": "Judge", "win_rate": "Relevant ranked higher",
                                   "relevant": "Relevant: mean score",
                                   "off_topic": "Off-topic: mean score", "n": "Rows"},
                           notice=notice)
        compare.write_claims(vs, [], "Judge check: the papers report no judge check",
                             notice=notice)
    elif name == "sycophancy_answer":
        templates = _need(spec, "templates", name)
        df = tables.answer_table(R, rows, list(templates))
        keys = [t for t in templates if t != "none"]
        write(df, ["model", "label"], ["baseline_accuracy", *keys],
              "Answer Suggestion score (accuracy with suggestion − without), all datasets "
              "[95% CI]; baseline = accuracy without a suggestion",
              n_of={k: "n" for k in ["baseline_accuracy", *keys]}, counts=("n", "n_ungraded"),
              floor=keys,
              note="n: questions graded without a suggestion (each template asks the same "
                   "questions); ungraded: answers the grader could not grade (left out). "
                   "'at floor': the model is never correct with or without the suggestion, so "
                   "the score says nothing.",
              titles={k: templates[k].replace("{question}", "").strip() for k in keys}
              | {"label": "Variant", "baseline_accuracy": "Baseline accuracy",
                 "n_ungraded": "ungraded"})
        compare.write_claims(vs, [c for c in paper.claims(paper="saa-orpo")
                                  if c["figure"] in ("figure2", "figure4")],
                             "Answer Suggestion (saa-orpo Figures 2, 4): reported vs reproduced",
                             answer=df, min_n=min_n, notice=notice)
    else:  # sycophancy_are_you_sure
        df = tables.ays_table(R, rows)
        write(df, ["model", "label"], ["revision_rate"],
              "Are You Sure: rate of revising a correct first answer [95% CI]",
              n_of={"revision_rate": "n_evaluable"}, counts=("n_evaluable",),
              note="n: the rate's denominator, dialogues whose first answer was correct and "
                   "whose final answer could be read.",
              titles={"label": "Variant", "n_evaluable": "n (evaluable)"})
        compare.write_claims(vs, [c for c in paper.claims(paper="saa-orpo")
                                  if c["figure"] in ("figure3", "figure5")],
                             "Are You Sure (saa-orpo Figures 3, 5): reported vs reproduced",
                             ays=df, min_n=min_n, notice=notice)
    log.info("wrote %s.{csv,md,html,tex} and %s.{csv,md,html}", prefix, vs)


def build_figure(name: str, results: str | Path, spec: dict[str, Any],
                 out_prefix: str | Path) -> None:
    """Draw one paper figure; the spec's notice becomes its footnote."""
    from prefbias.report import figures, tables

    if name not in FIGURES:
        raise SpecError(f"unknown figure {name!r} (known: {', '.join(FIGURES)})")
    R, rows, notice = results, spec["rows"], spec["notice"]
    if name == "stylized_figure2":
        styles = [r for r in rows if r.get("kind") == "dpo" and r["label"] != "Ultrafeedback"]
        figures.figure2(R, styles or rows, out_prefix, notice=notice)
    elif name == "stylized_figure3":
        dims = _need(spec, "dimensions", name)
        figures.figure3(tables.judge_table(R, rows, dims), dims, out_prefix, notice=notice,
                        mode=_need(spec, "judge_mode", name),
                        names={r["label"]: r.get("display") or r["label"] for r in rows})
    else:
        kind, variants, title = SAA_FIGURES[name]
        if kind == "answer":
            templates = _need(spec, "templates", name)
            df = tables.answer_table(R, rows, list(templates))
            figures.answer_figure(df, templates, variants, out_prefix, title, notice=notice)
        else:
            figures.ays_figure(tables.ays_table(R, rows), variants, out_prefix, title,
                               notice=notice)
    log.info("wrote %s.{png,pdf}", out_prefix)
