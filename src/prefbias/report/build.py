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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefbias.evaluation.judge import SCORE_MODES
from prefbias.plan import FIGURES, HELM_TABLES, TABLES

log = logging.getLogger("prefbias.report")


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
          count_cols: Sequence[str] = (), floor: Sequence[str] = (),
          not_run_cols: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(csv, display)`` frames of a table. ``n_of`` maps a value column to the column of the n
    it rests on: below ``min_n`` its cell reads "… (n=k < min_n: too few)" and the CSV gets
    ``<col>_too_few``; ``count_cols`` display as integers; a ``floor`` column whose
    ``<col>_floor`` is set reads "at floor: never correct" (no score, not "no effect"); an empty
    cell of a row with a ``not_run`` reason (:func:`prefbias.plan.eval_skipped`) reads it, in
    the ``not_run_cols`` (the columns that evaluation fills; None: every column)."""
    from prefbias.report.render import fmt_cell

    csv, disp = df.copy(), df.copy().astype(object)
    not_run = (df["not_run"] if "not_run" in df else pd.Series(index=df.index, dtype=object))
    not_run = {i: v for i, v in not_run.items() if isinstance(v, str) and v}
    for col in value_cols:
        ncol = n_of.get(col)
        if ncol and ncol in df:
            csv[f"{col}_too_few"] = [bool(not math.isnan(float(n)) and float(n) < min_n)
                                     if n is not None else False for n in df[ncol]]
        for i, r in df.iterrows():
            cell = fmt_cell(r, col)
            if i in not_run and cell == "N/A" and (not_run_cols is None or col in not_run_cols):
                cell = not_run[i]
            elif col in floor and float(r.get(f"{col}_floor") or 0) > 0:
                cell = "at floor: never correct"
            elif ncol and ncol in df and bool(csv.at[i, f"{col}_too_few"]):
                cell += f" (n={_count(r[ncol])} below {min_n}: too few)"
            disp.at[i, col] = cell
    for col in count_cols:
        if col in df:
            skip = not_run if not_run_cols is None or col in not_run_cols else {}
            disp[col] = [skip[i] if i in skip and _count(v) == "N/A" else _count(v)
                         for i, v in df[col].items()]
    return csv, disp


@dataclass
class ItemJob:
    """One report item being built: what :func:`build_table` / :func:`build_figure` hand the
    item's builder."""

    name: str
    results: str | Path
    spec: dict[str, Any]
    prefix: Path

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.spec["rows"]

    @property
    def notice(self) -> str:
        return self.spec["notice"]

    @property
    def min_n(self) -> int:
        return int(self.spec.get("min_n", 0))

    @property
    def vs(self) -> Path:
        """The reported-vs-reproduced companion's prefix."""
        return self.prefix.with_name(self.prefix.name + "_vs_paper")

    def need(self, key: str) -> Any:
        return _need(self.spec, key, self.name)

    def write(self, df, index_cols, value_cols, caption, *, n_of=None, counts=(), floor=(),
              not_run_cols=None, **kw) -> None:
        """The table (display strings, n marks) and its CSV (numbers, not display strings)."""
        from prefbias.report import render

        csv, disp = shown(df, value_cols, n_of or {}, self.min_n, counts, floor, not_run_cols)
        render.write_table(self.prefix, disp, index_cols, [*value_cols, *counts], caption,
                           notice=self.notice, **kw)
        render.write_csv(self.prefix.with_suffix(".csv"), csv)


def _paper_table(t: ItemJob, df: pd.DataFrame, *, caption: str | None = None, note: str = "",
                 n_of: dict[str, str] | None = None, counts: tuple[str, ...] = (),
                 not_run_cols: tuple[str, ...] | None = None) -> None:
    """A numeric table the paper reports (Tables 3-8): the paper's row order and caption, n per
    HELM scenario when ``helm_instances`` is in the spec, beside the reported numbers."""
    from prefbias.report import compare, paper
    from prefbias.report.aggregate import paper_order

    rep = paper.reported_table(t.name)
    df = paper_order(df, paper.row_order(t.name))
    if t.spec.get("helm_instances"):
        df["n_instances"] = int(t.spec["helm_instances"])
        counts = ("n_instances",)
        n_of = {c: "n_instances" for c in rep["columns"]}
        note += (f" n: instances per scenario, at most {t.spec['helm_instances']} "
                 "(helm.max_eval_instances; MMLU: per subject).")
    t.write(df, ["label"], list(rep["columns"]), caption or rep["caption"], n_of=n_of,
            counts=counts, note=note.strip(), not_run_cols=not_run_cols,
            titles={"n_validation": "n (validation)", "n_prompts": "n (prompts)",
                    "n_instances": "n (instances)"})
    compare.write_numeric(t.vs, t.name, df, notice=t.notice, not_run_cols=not_run_cols)


def _table3(t: ItemJob) -> None:
    from prefbias.report import paper, tables

    n_prompts = tables.reward_prompt_counts(t.results, t.rows)
    caption = None
    if len(n_prompts) == 1:  # the paper's caption, with this run's number of prompts
        caption = paper.reported_table(t.name)["caption_reproduced"].format(n=n_prompts[0])
    _paper_table(t, tables.table3(t.results, t.rows, t.spec["bootstrap"]), caption=caption,
                 counts=("n_validation", "n_prompts"), not_run_cols=("win_rate", "n_prompts"),
                 n_of={"validation_loss": "n_validation", "validation_accuracy": "n_validation",
                       "win_rate": "n_prompts"},
                 note="Win rate: vs the base model; validation loss and accuracy: on the "
                      "held-out preference pairs (SFT: loss per token); 95% bootstrap CI in "
                      "brackets. n: held-out examples (SFT conversations, DPO pairs) and "
                      "win-rate prompts.")


def _table4(t: ItemJob) -> None:
    from prefbias.report import tables

    _paper_table(t, tables.table4(t.results, t.rows))


def _helm_table(t: ItemJob) -> None:
    from prefbias.report import tables

    _paper_table(t, tables.helm_table(t.results, t.rows, HELM_TABLES[t.name]),
                 note="95% bootstrap CI over the scenario's instances in brackets.")


def _table3_pairs(t: ItemJob) -> None:  # rows: prefbias.plan.reward_pair_rows
    from prefbias.report import compare, paper, tables

    df = tables.reward_pairs_table(t.results, t.rows)
    ns = sorted({int(n) for n in df["n_prompts"].dropna()}) if len(df) else []
    caption = paper.load()["table3_pairs"]["caption"].format(
        n=ns[0] if len(ns) == 1 else "/".join(map(str, ns)) or "no")
    note = ("Each model's generations against its baseline's on the same prompts, scored by "
            "the reward model; 95% bootstrap CI over prompts in brackets; ties count one "
            "half. Table 3 holds every model against the base model."
            if len(df) else "No pairs configured (config reward_winrate.pairs).")
    t.write(df, ["label", "baseline_label"], ["win_rate"], caption,
            n_of={"win_rate": "n_prompts"}, counts=("n_prompts",), note=note,
            titles={"label": "Model", "n_prompts": "n (prompts)"})
    compare.write_pairs(t.vs, df, notice=t.notice)


def _judge_scores(t: ItemJob) -> None:
    from prefbias.report import compare, paper, tables

    dims = t.need("dimensions")
    df = tables.judge_table(t.results, t.rows, dims)
    mode = SCORE_MODES[t.need("judge_mode")]
    t.write(df, ["label"], dims,
            f"LLM judge scores (1-5; {mode}): mean [95% bootstrap CI over prompts]",
            n_of={d: f"{d}_n" for d in dims}, counts=(f"{dims[0]}_n",),
            titles={d: d.capitalize() for d in dims} | {f"{dims[0]}_n": "n (prompts)"})
    compare.write_claims(t.vs, paper.claims(figure="figure3", paper="stylized-dpo"),
                         "LLM judge (stylized-dpo Figure 3): reported claims vs reproduced",
                         judge=df, dimensions=dims, min_n=t.min_n, notice=t.notice)


def _judge_check(t: ItemJob) -> None:  # rows: prefbias.plan.judge_check_rows (one or none)
    from prefbias.report import compare, render, tables

    df = tables.judge_check_table(t.results, t.rows)
    mode = SCORE_MODES[t.need("judge_mode")]
    note = ("Per hand-made row the judge scores a relevant and an off-topic answer to the "
            f"same prompt ({mode}); the relevant one wins when its mean over the dimensions "
            "is higher (ties count one half). 95% bootstrap CI over rows in brackets."
            if len(df) else "No judge check set configured (config judge.check_set).")
    render.write_table(t.prefix, df, ["label", "n"], ["win_rate", "relevant", "off_topic"],
                       "Judge check: how often the judge ranks a relevant answer above an "
                       "off-topic one", note=note,
                       titles={"label": "Judge", "win_rate": "Relevant ranked higher",
                               "relevant": "Relevant: mean score",
                               "off_topic": "Off-topic: mean score", "n": "Rows"},
                       notice=t.notice)
    compare.write_claims(t.vs, [], "Judge check: the papers report no judge check",
                         notice=t.notice)


def _sycophancy_answer(t: ItemJob) -> None:
    from prefbias.report import compare, paper, tables

    templates = t.need("templates")
    df = tables.answer_table(t.results, t.rows, list(templates))
    keys = [k for k in templates if k != "none"]
    t.write(df, ["model", "label"], ["baseline_accuracy", *keys],
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
    compare.write_claims(t.vs, [c for c in paper.claims(paper="saa-orpo")
                                if c["figure"] in ("figure2", "figure4")],
                         "Answer Suggestion (saa-orpo Figures 2, 4): reported vs reproduced",
                         answer=df, min_n=t.min_n, notice=t.notice)


def _sycophancy_are_you_sure(t: ItemJob) -> None:
    from prefbias.report import compare, paper, tables

    df = tables.ays_table(t.results, t.rows)
    t.write(df, ["model", "label"], ["revision_rate"],
            "Are You Sure: rate of revising a correct first answer [95% CI]",
            n_of={"revision_rate": "n_evaluable"}, counts=("n_evaluable",),
            note="n: the rate's denominator, dialogues whose first answer was correct and "
                 "whose final answer could be read.",
            titles={"label": "Variant", "n_evaluable": "n (evaluable)"})
    compare.write_claims(t.vs, [c for c in paper.claims(paper="saa-orpo")
                                if c["figure"] in ("figure3", "figure5")],
                         "Are You Sure (saa-orpo Figures 3, 5): reported vs reproduced",
                         ays=df, min_n=t.min_n, notice=t.notice)


#: per table of :data:`prefbias.plan.TABLES`, the function that builds it (its catalog entry's
#: builder; the plan stays import-light, so the report side holds them)
TABLE_BUILDERS: dict[str, Callable[[ItemJob], None]] = {
    "table3": _table3, "table3_pairs": _table3_pairs, "table4": _table4,
    **dict.fromkeys(HELM_TABLES, _helm_table),
    "judge_scores": _judge_scores, "judge_check": _judge_check,
    "sycophancy_answer": _sycophancy_answer,
    "sycophancy_are_you_sure": _sycophancy_are_you_sure,
}


def build_table(name: str, results: str | Path, spec: dict[str, Any],
                out_prefix: str | Path) -> None:
    """Write one paper table and its reported-vs-reproduced companion."""
    if name not in TABLES:
        raise SpecError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
    job = ItemJob(name, results, spec, Path(out_prefix))
    TABLE_BUILDERS[name](job)
    log.info("wrote %s.{csv,md,html,tex} and %s.{csv,md,html}", job.prefix, job.vs)


def _figure2(f: ItemJob) -> None:  # rows: prefbias.plan.style_rows
    from prefbias.report import figures

    styles = [r for r in f.rows if r.get("kind") == "dpo" and r["label"] != "Ultrafeedback"]
    figures.figure2(f.results, styles or f.rows, f.prefix, notice=f.notice)


def _figure3(f: ItemJob) -> None:
    from prefbias.report import figures, tables

    dims = f.need("dimensions")
    figures.figure3(tables.judge_table(f.results, f.rows, dims), dims, f.prefix,
                    notice=f.notice, mode=f.need("judge_mode"),
                    names={r["label"]: r.get("display") or r["label"] for r in f.rows})


def _answer_figure(variants: tuple[str, str], title: str) -> Callable[[ItemJob], None]:
    """saa-orpo Figures 2 and 4: Answer Suggestion scores of two variants."""
    def build(f: ItemJob) -> None:
        from prefbias.report import figures, tables

        templates = f.need("templates")
        df = tables.answer_table(f.results, f.rows, list(templates))
        figures.answer_figure(df, templates, variants, f.prefix, title, notice=f.notice)
    return build


def _ays_figure(variants: tuple[str, str], title: str) -> Callable[[ItemJob], None]:
    """saa-orpo Figures 3 and 5: Are You Sure revision rates of two variants."""
    def build(f: ItemJob) -> None:
        from prefbias.report import figures, tables

        figures.ays_figure(tables.ays_table(f.results, f.rows), variants, f.prefix, title,
                           notice=f.notice)
    return build


#: per figure of :data:`prefbias.plan.FIGURES`, the function that draws it
FIGURE_BUILDERS: dict[str, Callable[[ItemJob], None]] = {
    "stylized_figure2": _figure2, "stylized_figure3": _figure3,
    "saa_figure2": _answer_figure(("non-aligned", "aligned"),
                                  "Answer Suggestion: non-aligned vs aligned models"),
    "saa_figure3": _ays_figure(("non-aligned", "aligned"),
                               "Are You Sure: non-aligned vs aligned models"),
    "saa_figure4": _answer_figure(("aligned", "aligned-SAA"),
                                  "Answer Suggestion: aligned vs aligned-SAA models"),
    "saa_figure5": _ays_figure(("aligned", "aligned-SAA"),
                               "Are You Sure: aligned vs aligned-SAA models"),
}


def build_figure(name: str, results: str | Path, spec: dict[str, Any],
                 out_prefix: str | Path) -> None:
    """Draw one paper figure; the spec's notice becomes its footnote."""
    if name not in FIGURES:
        raise SpecError(f"unknown figure {name!r} (known: {', '.join(FIGURES)})")
    FIGURE_BUILDERS[name](ItemJob(name, results, spec, Path(out_prefix)))
    log.info("wrote %s.{png,pdf}", out_prefix)
