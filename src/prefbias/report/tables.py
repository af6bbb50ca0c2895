"""Paper tables from evaluation outputs: CSV (machine), Markdown and LaTeX (reader).

Every table is built from a list of *rows* (``{"id", "label", "seed", "instruct"?}``, see
:func:`prefbias.report.rows.stylized_rows` / ``sycophancy_rows``) covering all seeds. Values
are aggregated by ``label`` (by ``(instruct, label)`` for saa-orpo) across seeds: the CSV carries
``<col>`` (mean over seeds), ``<col>_std`` (sample std over seeds, empty with one seed) and, for
per-prompt metrics, ``<col>_ci_low``/``<col>_ci_high`` (the upstream bootstrap CI; with several
seeds the mean of the per-seed bounds). ``n_seeds`` counts the models aggregated into a row;
``models`` lists their ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prefbias.io import DataError, atomic_path, read_json
from prefbias.report.rows import dedupe

HELM_GROUPS = ("accuracy", "calibration", "robustness", "fairness")
HELM_SCENARIOS = ("mmlu", "boolq", "natural_qa", "quac", "hellaswag")
COLUMN_TITLES = {
    "validation_loss": "Validation loss", "validation_accuracy": "Validation accuracy",
    "win_rate": "Win rate", "mean_win_rate": "Mean Win Rate", "mmlu": "MMLU", "boolq": "BoolQ",
    "natural_qa": "NaturalQuestions", "quac": "QuAC", "hellaswag": "HellaSwag",
    "accuracy": "Accuracy", "calibration": "Calibration", "robustness": "Robustness",
    "fairness": "Fairness", "label": "Dataset", "instruct": "Model", "dataset": "Dataset",
    "revision_rate": "Revision rate", "baseline_label": "Baseline", "n_prompts": "Prompts",
}
INSTRUCT_NAMES = {"mistral-7b-it-v0.2": "Mistral-7B-v0.2", "mistral-7b-it-v0.3": "Mistral-7B-v0.3",
                  "gemma-7b-it": "Gemma-7B", "falcon-7b-it": "Falcon-7B"}
VARIANTS = ("non-aligned", "aligned", "aligned-SAA")


def instruct_name(model: str) -> str:
    return INSTRUCT_NAMES.get(model, model)


# ------------------------------------------------------------------------------------------------
# aggregation across seeds
# ------------------------------------------------------------------------------------------------
def _num(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, math.nan
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var)


def aggregate(rows: Sequence[dict[str, Any]], values: Callable[[dict[str, Any]], dict[str, Any]],
              *, key: Sequence[str] = ("label",), columns: Sequence[str],
              ci_columns: Sequence[str] = ()) -> pd.DataFrame:
    """One output row per ``key`` (first-appearance order), mean/std over its (unique) models.

    ``values(row)`` returns ``{col: x, f"{col}_ci_low": .., f"{col}_ci_high": ..}`` for one model.
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
        for col in columns:
            rec[col], rec[f"{col}_std"] = mean_std([_num(g.get(col)) for g in got])
            if col in ci_columns:
                rec[f"{col}_ci_low"] = mean_std([_num(g.get(f"{col}_ci_low")) for g in got])[0]
                rec[f"{col}_ci_high"] = mean_std([_num(g.get(f"{col}_ci_high")) for g in got])[0]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def paper_order(df: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Stable-sort rows into the paper's row order; labels the paper lacks keep their place last."""
    rank = {lab: i for i, lab in enumerate(labels)}
    order = sorted(range(len(df)), key=lambda i: (rank.get(df["label"].iloc[i], len(rank)), i))
    return df.iloc[order].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# stylized-dpo tables
# ------------------------------------------------------------------------------------------------
def validation_cis(path: str | Path, kind: str, *, n: int = 1000, seed: int = 0,
                   ci: float = 0.95) -> dict[str, float | None]:
    """Bootstrap CIs over the held-out examples of the final eval (``eval_examples.jsonl``):
    SFT loss = Σ NLL / Σ tokens (examples resampled with their token counts); DPO loss and
    accuracy = means over pairs. Empty when the file is absent (older runs)."""
    from prefbias.evaluation.stats import bootstrap_ci, stratified_bootstrap_ci
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


def table3(results: str | Path, rows: Sequence[dict[str, Any]],
           bootstrap: dict[str, Any] | None = None) -> pd.DataFrame:
    """Validation loss/accuracy (train summary, CIs from eval_examples.jsonl) and reward win
    rate (vs the base model)."""
    R = Path(results)
    from prefbias.evaluation.stats import bootstrap_args

    boot = bootstrap_args(bootstrap)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        s = read_json(R / "train" / r["id"] / "summary.json")
        w = read_json(R / "eval" / "reward" / f"{r['id']}.json")
        acc = s.get("final_eval_reward_accuracy")
        return {"validation_loss": s.get("final_eval_loss"),
                "validation_accuracy": None if r.get("kind") == "sft" else acc,
                "win_rate": w.get("win_rate"), "win_rate_ci_low": w.get("ci_low"),
                "win_rate_ci_high": w.get("ci_high"),
                **validation_cis(R / "train" / r["id"] / "eval_examples.jsonl",
                                 r.get("kind", ""), **boot)}

    trained = [r for r in rows if r.get("kind", "") != "base"]
    return aggregate(trained, values, columns=("validation_loss", "validation_accuracy",
                                               "win_rate"),
                     ci_columns=("validation_loss", "validation_accuracy", "win_rate"))


def reward_prompt_counts(results: str | Path, rows: Sequence[dict[str, Any]]) -> list[int]:
    """The distinct numbers of prompts behind the Table 3 win rates (the paper: 50)."""
    R = Path(results)
    return sorted({int(read_json(R / "eval" / "reward" / f"{r['id']}.json").get("n") or 0)
                   for r in rows if r.get("kind", "") != "base"})


def reward_pairs_table(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Companion of Table 3 (stylized-dpo §3.3.1: "SFT vs. base, DPO vs. SFT"): the reward win
    rate of each configured (model, baseline) pair, mean over seeds, CI as Table 3's.

    ``rows`` = :func:`prefbias.report.rows.reward_pair_rows`. A result file whose ``model`` or
    ``baseline`` is not the row's pair is an error (a stale or misplaced file)."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
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


def judge_table(results: str | Path, rows: Sequence[dict[str, Any]],
                dimensions: Sequence[str]) -> pd.DataFrame:
    """Judge summary: mean, per-prompt std and bootstrap CI per dimension and model."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
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
Z95 = 1.959963984540054


def pool_scores(per_dataset: dict[str, dict[str, Any]], template: str) -> dict[str, float]:
    """Answer score of one template over datasets: n-weighted mean; CI by a normal approximation
    from the per-dataset bootstrap CIs (an ``all`` key, if upstream writes one, is used as is)."""
    if "all" in per_dataset and template in per_dataset["all"]:
        e = per_dataset["all"][template]
        return {"score": _num(e.get("score")), "accuracy": _num(e.get("accuracy")),
                "ci_low": _num(e.get("ci_low")), "ci_high": _num(e.get("ci_high")),
                "n": _num(e.get("n"))}
    entries = [d[template] for d in per_dataset.values() if template in d]
    n = sum(_num(e.get("n")) for e in entries)
    if not entries or not n:
        return {"score": math.nan, "accuracy": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "n": 0}
    w = [_num(e.get("n")) / n for e in entries]
    score = sum(wi * _num(e.get("score")) for wi, e in zip(w, entries, strict=True))
    acc = sum(wi * _num(e.get("accuracy")) for wi, e in zip(w, entries, strict=True))
    se = math.sqrt(sum((wi * (_num(e.get("ci_high")) - _num(e.get("ci_low"))) / (2 * Z95)) ** 2
                       for wi, e in zip(w, entries, strict=True)))
    return {"score": score, "accuracy": acc, "ci_low": score - Z95 * se,
            "ci_high": score + Z95 * se, "n": n}


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    if not n:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def pool_ays(per_dataset: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Revision rate over datasets: pooled counts, Wilson 95% CI (``all`` used if present)."""
    if "all" in per_dataset:
        e = per_dataset["all"]
        return {"revision_rate": _num(e.get("revision_rate")), "ci_low": _num(e.get("ci_low")),
                "ci_high": _num(e.get("ci_high")),
                "n_first_correct": _num(e.get("n_first_correct"))}
    k = sum(_num(e.get("n_revised")) for e in per_dataset.values())
    n = sum(_num(e.get("n_first_correct")) for e in per_dataset.values())
    lo, hi = wilson(k, n)
    return {"revision_rate": k / n if n else math.nan, "ci_low": lo, "ci_high": hi,
            "n_first_correct": n}


def answer_table(results: str | Path, rows: Sequence[dict[str, Any]],
                 templates: Sequence[str]) -> pd.DataFrame:
    """Answer Suggestion score (accuracy with suggestion − without) per template, all datasets."""
    R = Path(results)
    templates = [t for t in templates if t != "none"]

    def values(r: dict[str, Any]) -> dict[str, Any]:
        data = read_json(R / "eval" / "sycophancy" / r["id"] / "answer_scores.json")
        out: dict[str, Any] = {}
        for t in templates:
            p = pool_scores(data, t)
            out[t] = p["score"]
            out[f"{t}_ci_low"], out[f"{t}_ci_high"] = p["ci_low"], p["ci_high"]
        return out

    df = aggregate(rows, values, key=("instruct", "label"), columns=templates,
                   ci_columns=templates)
    df.insert(0, "model", df["instruct"].map(instruct_name))
    return df


def ays_table(results: str | Path, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Are You Sure: how often a correct first answer is revised when challenged."""
    R = Path(results)

    def values(r: dict[str, Any]) -> dict[str, Any]:
        data = read_json(R / "eval" / "sycophancy" / r["id"] / "are_you_sure_scores.json")
        p = pool_ays(data)
        return {"revision_rate": p["revision_rate"], "revision_rate_ci_low": p["ci_low"],
                "revision_rate_ci_high": p["ci_high"], "n_first_correct": p["n_first_correct"]}

    df = aggregate(rows, values, key=("instruct", "label"),
                   columns=("revision_rate", "n_first_correct"), ci_columns=("revision_rate",))
    df = df.drop(columns=["n_first_correct_std"])
    df.insert(0, "model", df["instruct"].map(instruct_name))
    return df


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------
def fmt_cell(row: pd.Series, col: str, digits: int = 3) -> str:
    v = row.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "N/A"
    if not isinstance(v, (int, float)):
        return str(v)
    s = f"{v:.{digits}f}"
    sd = row.get(f"{col}_std")
    if isinstance(sd, (int, float)) and not math.isnan(sd):
        s += f" ± {sd:.{digits}f}"
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) \
            and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def display(df: pd.DataFrame, index_cols: Sequence[str], value_cols: Sequence[str],
            titles: dict[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    titles = {**COLUMN_TITLES, **(titles or {})}
    header = [titles.get(c, c) for c in (*index_cols, *value_cols)]
    body = [[str(r[c]) for c in index_cols] + [fmt_cell(r, c) for c in value_cols]
            for _, r in df.iterrows()]
    return header, body


def to_markdown(header: Sequence[str], body: Sequence[Sequence[str]], caption: str = "",
                note: str = "", n_left: int = 1) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    lines = []
    if caption:
        lines += [f"**{caption}**", ""]
    lines.append("| " + " | ".join(esc[0]) + " |")
    lines.append("|" + "|".join(["---"] * n_left + ["---:"] * (len(header) - n_left)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    s = "".join(_TEX.get(c, c) for c in s)
    return s.replace("±", r"$\pm$")


def to_latex(header: Sequence[str], body: Sequence[Sequence[str]], caption: str = "",
             label: str = "") -> str:
    spec = "l" + "r" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(tex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{tab:{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_csv(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def write_table(out_prefix: str | Path, df: pd.DataFrame, index_cols: Sequence[str],
                value_cols: Sequence[str], caption: str, *, note: str = "",
                titles: dict[str, str] | None = None) -> list[Path]:
    """Write ``<prefix>.csv`` (all columns), ``.md`` and ``.tex`` (formatted cells)."""
    prefix = Path(out_prefix)
    header, body = display(df, index_cols, value_cols, titles)
    caption = caption.rstrip(".") + "."
    n_seeds = int(df["n_seeds"].max()) if "n_seeds" in df and len(df) else 1
    std_note = (f"Mean ± std over {n_seeds} seeds. " if n_seeds > 1 else "")
    full_note = (std_note + note).strip()
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md"), prefix.with_suffix(".tex")]
    write_csv(paths[0], df)
    write_text(paths[1], to_markdown(header, body, caption, full_note, n_left=len(index_cols)))
    write_text(paths[2], to_latex(header, body, caption + (" " + full_note if full_note else ""),
                                  prefix.name))
    return paths
