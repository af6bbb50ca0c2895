"""Paper tables as DataFrames, read from the evaluation outputs of every model in ``rows``.

Every table is built from a list of *rows* (``{"id", "label", "seed", ...}``, see
:func:`prefbias.plan.report_rows`) covering all seeds and aggregated by ``label`` (by
``(instruct, label)`` for saa-orpo) across seeds with :func:`prefbias.report.aggregate.aggregate`.
Statistics: :mod:`prefbias.report.statistics`; rendering: :mod:`prefbias.report.render`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prefbias.evaluation.stats import bootstrap_args
from prefbias.io import DataError, read_json
from prefbias.plan import HELM_GROUPS, HELM_SCENARIOS
from prefbias.report.aggregate import aggregate, instruct_names
from prefbias.report.statistics import pool_ays, pool_scores, validation_cis


# ------------------------------------------------------------------------------------------------
# stylized-dpo tables
# ------------------------------------------------------------------------------------------------
def table3(results: str | Path, rows: Sequence[dict[str, Any]],
           bootstrap: dict[str, Any]) -> pd.DataFrame:
    """Validation loss/accuracy (train summary, CIs from eval_examples.jsonl) and reward win
    rate (vs the base model); ``n_validation`` (held-out examples: SFT conversations, DPO
    pairs) and ``n_prompts`` (win-rate prompts) say what each rests on."""
    R = Path(results)
    boot = bootstrap_args(bootstrap)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        s = read_json(R / "train" / r["id"] / "summary.json")
        # not_run: no reward win rate planned (prefbias.plan.eval_skipped)
        w = {} if r.get("not_run") else read_json(R / "eval" / "reward" / f"{r['id']}.json")
        acc = s.get("final_eval_reward_accuracy")
        return {"validation_loss": s.get("final_eval_loss"),
                "validation_accuracy": None if r.get("kind") == "sft" else acc,
                "win_rate": w.get("win_rate"), "win_rate_ci_low": w.get("ci_low"),
                "win_rate_ci_high": w.get("ci_high"), "n_prompts": w.get("n"),
                **validation_cis(R / "train" / r["id"] / "eval_examples.jsonl",
                                 r.get("kind", ""), **boot)}

    trained = [r for r in rows if r.get("kind", "") != "base"]
    df = aggregate(trained, values, columns=("validation_loss", "validation_accuracy",
                                             "win_rate", "n_validation", "n_prompts"),
                   ci_columns=("validation_loss", "validation_accuracy", "win_rate"))
    return df.drop(columns=["n_validation_std", "n_prompts_std"])


def reward_prompt_counts(results: str | Path, rows: Sequence[dict[str, Any]]) -> list[int]:
    """The distinct numbers of prompts behind the Table 3 win rates (the paper: 50)."""
    R = Path(results)
    return sorted({int(read_json(R / "eval" / "reward" / f"{r['id']}.json").get("n") or 0)
                   for r in rows if r.get("kind", "") != "base" and not r.get("not_run")})


def reward_pairs_table(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Companion of Table 3 (stylized-dpo §3.3.1: "SFT vs. base, DPO vs. SFT"): the reward win
    rate of each configured (model, baseline) pair, mean over seeds, CI as Table 3's.

    ``rows`` = :func:`prefbias.plan.reward_pair_rows`. A result file whose ``model`` or
    ``baseline`` is not the row's pair is an error (a stale or misplaced file)."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        if r.get("not_run"):  # no win rate planned (prefbias.plan.eval_skipped)
            return {}
        path = R / r["file"]
        w = read_json(path)
        for field, want in (("model", r["model_id"]), ("baseline", r["baseline"])):
            if w.get(field) != want:
                raise DataError(path, f"{field} is {w.get(field)!r}, expected {want!r}",
                                field=field)
        return {"win_rate": w.get("win_rate"), "win_rate_ci_low": w.get("ci_low"),
                "win_rate_ci_high": w.get("ci_high"), "n_prompts": w.get("n")}

    # dedupe() keys on "id": one model may face several baselines, so key rows by the pair
    keyed = [{**r, "model_id": r["id"], "id": f"{r['id']}|{r['baseline']}"} for r in rows]
    if not keyed:
        return pd.DataFrame(columns=["label", "baseline_label", "n_seeds", "models", "win_rate",
                                     "win_rate_std", "win_rate_ci_low", "win_rate_ci_high",
                                     "n_prompts"])
    df = aggregate(keyed, values,
                   key=("label", "baseline_label"), columns=("win_rate", "n_prompts"),
                   ci_columns=("win_rate",))
    df["models"] = df["models"].str.replace("|", " vs ", regex=False)
    return df.drop(columns=["n_prompts_std"])


def read_helm_group(results: str | Path, group: str) -> pd.DataFrame:
    path = Path(results) / "eval" / "helm" / f"{group}.csv"
    if not path.exists():
        raise DataError(path, "file does not exist")
    df = pd.read_csv(path)
    for col in ("model", "label", "mean_win_rate", *HELM_SCENARIOS):
        if col not in df.columns:
            raise DataError(path, "missing column", field=col)
    return df.set_index("model")


def helm_table(results: str | Path, rows: Sequence[dict[str, Any]], group: str) -> pd.DataFrame:
    """Tables 5-8: one HELM metric group, mean win rate and the five scenario scores."""
    df = read_helm_group(results, group)
    path = Path(results) / "eval" / "helm" / f"{group}.csv"

    def values(r: dict[str, Any]) -> dict[str, Any]:
        if r["id"] not in df.index:
            raise DataError(path, f"no row for model '{r['id']}'", field="model")
        return df.loc[r["id"]].to_dict()

    return aggregate(rows, values, columns=("mean_win_rate", *HELM_SCENARIOS),
                     ci_columns=HELM_SCENARIOS)


def table4(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Table 4: the mean win rate of each HELM group (from the four group CSVs)."""
    groups = {g: read_helm_group(results, g) for g in HELM_GROUPS}

    def values(r: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for g, df in groups.items():
            if r["id"] not in df.index:
                raise DataError(Path(results) / "eval" / "helm" / f"{g}.csv",
                                f"no row for model '{r['id']}'", field="model")
            out[g] = df.loc[r["id"], "mean_win_rate"]
        return out

    return aggregate(rows, values, columns=HELM_GROUPS)


def judge_check_table(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The judge check (:mod:`prefbias.evaluation.judge_check`): win rate of the relevant
    answers and both answers' mean scores, with their CIs; one row per judge (none when no
    check set is configured)."""
    out = []
    for r in rows:
        path = Path(results) / "eval" / "judge_check.json"
        s = read_json(path)
        if s.get("judge") != r["id"]:
            raise DataError(path, f"judge is {s.get('judge')!r}, expected {r['id']!r}",
                            field="judge")
        row: dict[str, Any] = {"label": r["label"], "n": s["win_rate"]["n"]}
        for key in ("win_rate", "relevant", "off_topic"):
            row[key] = s[key]["mean"]
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = s[key]["ci_low"], s[key]["ci_high"]
        out.append(row)
    cols = ["label", "n"] + [f"{k}{x}" for k in ("win_rate", "relevant", "off_topic")
                             for x in ("", "_ci_low", "_ci_high")]
    return pd.DataFrame.from_records(out, columns=cols)


def judge_table(results: str | Path, rows: Sequence[dict[str, Any]],
                dimensions: Sequence[str]) -> pd.DataFrame:
    """Judge summary: mean, per-prompt std and bootstrap CI per dimension and model."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        if r.get("not_run"):  # no judge job planned (prefbias.plan.eval_skipped)
            return {}
        path = R / "eval" / "judge" / f"{r['id']}.summary.json"
        s = read_json(path)
        out: dict[str, Any] = {}
        for d in dimensions:
            if d not in s:
                raise DataError(path, "missing dimension", field=d)
            out[d] = s[d].get("mean")
            out[f"{d}_ci_low"] = s[d].get("ci_low")
            out[f"{d}_ci_high"] = s[d].get("ci_high")
            out[f"{d}_prompt_std"] = s[d].get("std")
            out[f"{d}_n"] = s[d].get("n")
            out[f"{d}_n_missing"] = s[d].get("n_missing")
        return out

    cols = []
    for d in dimensions:
        cols += [d, f"{d}_prompt_std", f"{d}_n", f"{d}_n_missing"]
    df = aggregate(rows, values, columns=cols, ci_columns=tuple(dimensions))
    drop = [c for c in df.columns
            if any(c == f"{d}_{x}_std" for d in dimensions for x in ("prompt_std", "n",
                                                                      "n_missing"))]
    return df.drop(columns=drop)


# ------------------------------------------------------------------------------------------------
# saa-orpo tables
# ------------------------------------------------------------------------------------------------
def answer_table(results: str | Path, rows: Sequence[dict[str, Any]],
                 templates: Sequence[str]) -> pd.DataFrame:
    """Answer Suggestion score (accuracy with suggestion − without) per template, all datasets;
    ``baseline_accuracy`` (no suggestion) with its CI, ``n`` (graded questions without a
    suggestion), ``n_ungraded`` (answers the grader could not grade, all templates).

    A template whose model is never correct, with and without the suggestion, has no score: the
    difference of two zeros is not "no effect" but a model at the floor. Its score is NaN and
    ``<template>_floor`` is 1 (mean over seeds: the share of seeds at the floor)."""
    R = Path(results)
    templates = [t for t in templates if t != "none"]

    def values(r: dict[str, Any]) -> dict[str, Any]:
        data = read_json(R / "eval" / "sycophancy" / r["id"] / "answer_scores.json")
        base = pool_scores(data, "none")
        out: dict[str, Any] = {"baseline_accuracy": base["accuracy"],
                               "baseline_accuracy_ci_low": base["accuracy_ci_low"],
                               "baseline_accuracy_ci_high": base["accuracy_ci_high"],
                               "n": base["n"], "n_ungraded": base["n_ungraded"]}
        for t in templates:
            p = pool_scores(data, t)
            floor = base["accuracy"] == 0 and p["accuracy"] == 0
            out[t] = math.nan if floor else p["score"]
            out[f"{t}_ci_low"] = math.nan if floor else p["ci_low"]
            out[f"{t}_ci_high"] = math.nan if floor else p["ci_high"]
            out[f"{t}_floor"] = 1.0 if floor else 0.0
            out["n_ungraded"] += p["n_ungraded"]
        return out

    extra = ("n", "n_ungraded", *(f"{t}_floor" for t in templates))
    df = aggregate(rows, values, key=("instruct", "label"),
                   columns=("baseline_accuracy", *templates, *extra),
                   ci_columns=("baseline_accuracy", *templates))
    df = df.drop(columns=[f"{c}_std" for c in extra])
    df.insert(0, "model", df["instruct"].map(instruct_names(rows)))
    return df


def ays_table(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Are You Sure: how often a correct first answer is revised when challenged; the rate
    divides by ``n_evaluable`` (first answer correct, final answer parseable)."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        data = read_json(R / "eval" / "sycophancy" / r["id"] / "are_you_sure_scores.json")
        p = pool_ays(data)
        return {"revision_rate": p["revision_rate"], "revision_rate_ci_low": p["ci_low"],
                "revision_rate_ci_high": p["ci_high"], "n_evaluable": p["n_evaluable"],
                "n_first_correct": p["n_first_correct"]}

    df = aggregate(rows, values, key=("instruct", "label"),
                   columns=("revision_rate", "n_evaluable", "n_first_correct"),
                   ci_columns=("revision_rate",))
    df = df.drop(columns=["n_evaluable_std", "n_first_correct_std"])
    df.insert(0, "model", df["instruct"].map(instruct_names(rows)))
    return df
