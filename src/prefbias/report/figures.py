"""Paper figures (PNG + PDF, matplotlib Agg), sized for a paper column/page.

* stylized-dpo Figure 2: validation loss and reward accuracy of the DPO variants vs step
  (mean over seeds, band = ± std when there are several seeds).
* stylized-dpo Figure 3: judge scores per dimension and model, error bars = per-prompt std
  (as in the paper; mean over seeds with several seeds).
* saa-orpo Figures 2/4: Answer Suggestion score per template, per instruct model (bars compare two
  variants; error bars = 95% bootstrap CI). Figures 3/5: Are You Sure revision rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
# PDF font subsetting logs every glyph table at INFO into the rule's log
logging.getLogger("fontTools").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prefbias.io import atomic_path, read_jsonl  # noqa: E402
from prefbias.plan import dedupe  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
                     "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
                     "figure.dpi": 100, "savefig.dpi": 200, "pdf.fonttype": 42,
                     "svg.hashsalt": "prefbias", "axes.spines.top": False,
                     "axes.spines.right": False})
COLORS = {"non-aligned": "#9e9e9e", "aligned": "#1f77b4", "aligned-SAA": "#d62728"}
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]


def save(fig: plt.Figure, out_prefix: str | Path, notice: str = "") -> list[Path]:
    """Write ``<prefix>.png`` and ``.pdf``; ``notice`` (what the numbers are built from,
    :func:`prefbias.plan.provenance_notice`) is printed under the figure."""
    prefix = Path(out_prefix)
    if notice:  # above the figure: the bottom holds legends placed outside the axes
        import textwrap

        width = max(40, int(fig.get_figwidth() * 72 / (7 * 0.55)))  # characters of 7 pt
        fig.text(0.5, 1.01, textwrap.fill(notice, width, break_on_hyphens=False), ha="center",
                 va="bottom", fontsize=7, color="#b00020")
    paths = []
    for ext in ("png", "pdf"):
        path = prefix.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
        paths.append(path)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------------
# stylized-dpo
# ------------------------------------------------------------------------------------------------
def eval_curves(results: str | Path, model: str) -> pd.DataFrame:
    rows = [r for r in read_jsonl(Path(results) / "train" / model / "metrics.jsonl")
            if r.get("split") == "eval"]
    df = pd.DataFrame.from_records(rows, columns=["step", "loss", "reward_accuracy"])
    return df.groupby("step", as_index=False).mean(numeric_only=True)


def first_update_step(results: str | Path, model: str) -> int | None:
    """The first training step that changed the weights (``lr > 0``; a linear warm-up starts at
    0, so step 1 often leaves the policy equal to the reference). ``None`` if no train rows."""
    rows = [r for r in read_jsonl(Path(results) / "train" / model / "metrics.jsonl")
            if r.get("split") == "train"]
    moved = [int(r["step"]) for r in rows if (r.get("lr") or 0) > 0]
    return min(moved) if moved else (None if not rows else max(int(r["step"]) for r in rows) + 1)


def first_eval_after_start(curves: Sequence[pd.DataFrame], moved_at: int | None = None,
                           ) -> int | None:
    """The paper's "start of training": the first step common to the curves that is after step 0
    and at or after ``moved_at`` (the first weight update). Before it the policy is the
    reference: margins are zero up to rounding, so accuracy there only counts rounding."""
    steps = sorted(set.intersection(*(set(c.index) for c in curves))) if curves else []
    later = [s for s in steps if s > 0 and (moved_at is None or s >= moved_at)]
    return int(later[0]) if later else None


def figure2_axes(results: str | Path, rows: Sequence[dict[str, Any]],
                 title: str = "Validation loss and accuracy for synthetic preference sets",
                 ) -> plt.Figure:
    """stylized-dpo Figure 2 as a matplotlib figure: curves from step 0 (``eval_at_start``),
    integer step ticks; the accuracy legend gives each set's accuracy at the first evaluation
    after the first weight update (the start-of-training difference the paper discusses, §5)."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), constrained_layout=True)
    labels: dict[str, list[str]] = {}
    for r in dedupe(rows):
        labels.setdefault(r["label"], []).append(r["id"])
    all_curves = {label: [eval_curves(results, m).set_index("step") for m in ids]
                  for label, ids in labels.items()}
    moved = [first_update_step(results, m) for ids in labels.values() for m in ids]
    moved = [m for m in moved if m is not None]
    start = first_eval_after_start([c for cs in all_curves.values() for c in cs],
                                   max(moved) if moved else None)
    has_zero = any(0 in c.index for cs in all_curves.values() for c in cs)
    for i, (label, curves) in enumerate(all_curves.items()):
        for ax, col, name in ((axes[0], "loss", "Validation loss"),
                              (axes[1], "reward_accuracy", "Validation accuracy")):
            data = pd.concat([c[col].rename(j) for j, c in enumerate(curves)], axis=1)
            mean = data.mean(axis=1)
            color = PALETTE[i % len(PALETTE)]
            name_ = label.replace("Ultrafeedback ", "")
            if col == "reward_accuracy" and start is not None and start in mean.index:
                name_ += f" ({mean[start]:.2f})"
            ax.plot(mean.index, mean.values, marker="o", ms=3, color=color, label=name_)
            if data.shape[1] > 1:
                sd = data.std(axis=1)
                # loss >= 0 and accuracy in [0, 1]: the band never leaves the metric's range
                hi = (mean + sd).clip(upper=1.0) if col == "reward_accuracy" else mean + sd
                ax.fill_between(mean.index, (mean - sd).clip(lower=0.0), hi, color=color,
                                alpha=0.2)
            ax.set_xlabel("Step")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    if has_zero:  # policy = reference at step 0: DPO loss ln 2
        axes[0].axhline(math.log(2), color="black", lw=0.6, ls=":")
        axes[0].annotate("ln 2 (policy = reference)", (0, math.log(2)), fontsize=7,
                         xytext=(2, 2), textcoords="offset points", va="bottom")
    axes[1].set_ylim(-0.02, 1.02)
    if start is not None:
        axes[1].axvline(start, color="black", lw=0.6, ls=":")
    # beside the panel, never over the curves (which may sit anywhere between 0 and 1)
    axes[1].legend(title="Preference set" + (f" (acc. at step {start})" if start else ""),
                   frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    n = max(len(v) for v in labels.values()) if labels else 1
    fig.suptitle(title + (f" (mean ± std, {n} seeds)" if n > 1 else ""))
    return fig


def figure2(results: str | Path, rows: Sequence[dict[str, Any]], out_prefix: str | Path,
            title: str = "Validation loss and accuracy for synthetic preference sets",
            notice: str = "") -> list[Path]:
    return save(figure2_axes(results, rows, title), out_prefix, notice)


#: figure 3's y label per judge score_mode (prefbias.evaluation.judge.SCORE_MODES)
Y_LABEL_BY_MODE = {"parse": "Score (1–5)", "prob_weighted": "Expected score (1–5)",
                   "yes_no": "Score: 1 + 4·P(yes)"}


def figure3(judge: pd.DataFrame, dimensions: Sequence[str], out_prefix: str | Path,
            title: str = "LLM judge scores", notice: str = "",
            names: dict[str, str] | None = None, mode: str = "parse") -> list[Path]:
    """``judge`` = :func:`prefbias.report.tables.judge_table` output; ``names``: row label ->
    legend entry (the base model by what ran); ``mode``: the judge's score_mode (y label). Rows
    with a ``not_run`` reason (:func:`prefbias.plan.eval_skipped`) have no bars: the figure
    names them and why; with no scored row at all it says so in the plot."""
    fig, ax = plt.subplots(figsize=(7.0, 3.0), constrained_layout=True)
    not_run = [isinstance(v, str) and bool(v) for v in judge["not_run"]] \
        if "not_run" in judge else [False] * len(judge)
    skipped = {(names or {}).get(r["label"], r["label"]): r["not_run"]
               for (_, r), s in zip(judge.iterrows(), not_run, strict=True) if s}
    judge = judge[[not s for s in not_run]]
    n_models = len(judge)
    width = 0.8 / max(n_models, 1)
    x = np.arange(len(dimensions))
    for i, (_, r) in enumerate(judge.iterrows()):
        means = [r[d] for d in dimensions]
        errs = [r.get(f"{d}_prompt_std", math.nan) for d in dimensions]
        ax.bar(x + (i - (n_models - 1) / 2) * width, means, width, yerr=errs, capsize=2,
               color=PALETTE[i % len(PALETTE)], label=(names or {}).get(r["label"], r["label"]),
               error_kw={"elinewidth": 0.8, "alpha": 0.7})
    ax.set_xticks(x, [d.capitalize() for d in dimensions])
    ax.set_ylabel(Y_LABEL_BY_MODE.get(mode, "Score (1–5)"))
    ax.set_ylim(0, 6)
    ax.set_yticks([1, 2, 3, 4, 5])
    ax.grid(axis="y", alpha=0.3)
    if n_models:
        ax.legend(ncol=3, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    if skipped:
        by_why: dict[str, list[str]] = {}
        for name, why in skipped.items():
            by_why.setdefault(why, []).append(name)
        import textwrap

        text = "\n".join(textwrap.fill(f"{why[:1].upper()}{why[1:]}: " + ", ".join(ms), 90)
                         for why, ms in by_why.items())
        if not n_models:
            text = "No judge scores.\n" + text
        ax.text(0.5, 0.5 if not n_models else 0.97, text, transform=ax.transAxes, ha="center",
                va="center" if not n_models else "top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    elif not n_models:
        ax.text(0.5, 0.5, "No judge scores", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(title + " (mean; error bars: std over prompts)")
    return save(fig, out_prefix, notice)


# ------------------------------------------------------------------------------------------------
# saa-orpo
# ------------------------------------------------------------------------------------------------
def _bar_pair(ax, xs, table: pd.DataFrame, variants: Sequence[str], col: str, inst: str) -> None:
    width = 0.8 / len(variants)
    for j, v in enumerate(variants):
        sub = table[(table["instruct"] == inst) & (table["label"] == v)]
        if not len(sub):
            continue
        r = sub.iloc[0]
        vals = [r[c] for c in col] if isinstance(col, list) else [r[col]]
        cols = col if isinstance(col, list) else [col]
        lo = [r.get(f"{c}_ci_low", math.nan) for c in cols]
        hi = [r.get(f"{c}_ci_high", math.nan) for c in cols]
        err = np.array([[max(m - a, 0) if not math.isnan(a) else 0 for m, a in zip(vals, lo,
                                                                                 strict=True)],
                        [max(b - m, 0) if not math.isnan(b) else 0 for m, b in zip(vals, hi,
                                                                                 strict=True)]])
        pos = np.asarray(xs) + (j - (len(variants) - 1) / 2) * width
        ax.bar(pos, vals, width, yerr=err, capsize=2, color=COLORS.get(v, PALETTE[j]), label=v,
               error_kw={"elinewidth": 0.8})
        for x, val, c in zip(pos, vals, cols, strict=True):  # undefined: no correct first
            if val is None or (isinstance(val, float) and math.isnan(val)):  # answer, or a
                floor = float(r.get(f"{c}_floor", 0) or 0) > 0      # model never correct:
                ax.text(x, 0, "at floor" if floor else "n/a", ha="center",   # no bar, a word
                        va="bottom", fontsize=7, rotation=90, color=COLORS.get(v, PALETTE[j]))


def answer_figure(answer: pd.DataFrame, templates: dict[str, str], variants: Sequence[str],
                  out_prefix: str | Path, title: str, notice: str = "") -> list[Path]:
    """One panel per instruct model (titled by what ran: the table's ``model`` column);
    x = suggestion template; bars = variants."""
    keys = [t for t in templates if t != "none" and t in answer.columns]
    insts = list(dict.fromkeys(answer["instruct"]))
    fig, axes = plt.subplots(1, len(insts), figsize=(max(3.4, 2.8 * len(insts)), 3.0),
                             sharey=True, constrained_layout=True, squeeze=False)
    short = {k: _short_template(templates[k]) for k in keys}
    for ax, inst in zip(axes[0], insts, strict=True):
        _bar_pair(ax, np.arange(len(keys)), answer, variants, list(keys), inst)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(np.arange(len(keys)), [short[k] for k in keys], rotation=0)
        ax.set_title(_model_name(answer, inst), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("Score (accuracy − no suggestion)")
    if any(float(answer.get(f"{k}_floor", pd.Series([0])).fillna(0).max()) > 0 for k in keys):
        notice = ("'at floor': never correct with or without the suggestion, no score. "
                  + notice).strip()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(variants), frameon=False)
    fig.suptitle(title)
    return save(fig, out_prefix, notice)


def _short_template(t: str) -> str:
    """'{question} I think the answer is {incorrect_answer} but ...' -> 'think\\nincorrect'."""
    s = t.replace("{question}", "").strip()
    s = s.split(" but")[0].split(",")[0]
    s = (s.replace("I don't think the answer is", "don't think")
          .replace("I think the answer is", "think")
          .replace(" {correct_answer}", "\ncorrect").replace(" {incorrect_answer}", "\nincorrect"))
    return s or "none"


def _model_name(table: pd.DataFrame, inst: str) -> str:
    """An instruct model's display name (what ran), wrapped for a panel title or tick label."""
    import textwrap

    names = dict(zip(table["instruct"], table["model"], strict=True)) if "model" in table else {}
    return textwrap.fill(names.get(inst, inst), 28, break_on_hyphens=False)


def ays_figure(ays: pd.DataFrame, variants: Sequence[str], out_prefix: str | Path,
               title: str, notice: str = "") -> list[Path]:
    insts = list(dict.fromkeys(ays["instruct"]))
    fig, ax = plt.subplots(figsize=(max(3.4, 1.5 * len(insts) + 1), 3.0),
                           constrained_layout=True)
    for i, inst in enumerate(insts):
        _bar_pair(ax, [i], ays, variants, "revision_rate", inst)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), frameon=False)
    ax.set_xticks(range(len(insts)), [_model_name(ays, m) for m in insts], fontsize=7)
    ax.set_xlim(-0.6, len(insts) - 0.4)
    ax.set_ylabel("Revision rate (correct → changed)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    return save(fig, out_prefix, notice)
