"""Rendering of table DataFrames: CSV (machine), Markdown and LaTeX (reader), written atomically.

A cell reads ``mean ± std (over seeds) [CI low, CI high]`` from the ``<col>``, ``<col>_std`` and
``<col>_ci_low``/``<col>_ci_high`` columns of :func:`prefbias.report.aggregate.aggregate`.

Text from the config (display names, labels) never acts as markup: Markdown cells, caption and
note have HTML escaped (``<``, ``>``, ``&``) and line breaks folded; HTML and LaTeX escape theirs;
a CSV string cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) is
prefixed with ``'`` so a spreadsheet never runs it as a formula (numbers, negative ones included,
stay numbers).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from prefbias.io import atomic_path

COLUMN_TITLES = {
    "validation_loss": "Validation loss", "validation_accuracy": "Validation accuracy",
    "win_rate": "Win rate", "mean_win_rate": "Mean Win Rate", "mmlu": "MMLU", "boolq": "BoolQ",
    "natural_qa": "NaturalQuestions", "quac": "QuAC", "hellaswag": "HellaSwag",
    "accuracy": "Accuracy", "calibration": "Calibration", "robustness": "Robustness",
    "fairness": "Fairness", "label": "Dataset", "instruct": "Model", "dataset": "Dataset",
    "revision_rate": "Revision rate", "baseline_label": "Baseline", "n_prompts": "Prompts",
    "model": "Model",
}


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


def md_escape(text: str) -> str:
    """Text for a Markdown table cell or paragraph: HTML escaped (Markdown passes raw tags
    through), line breaks folded (a newline would end the table row), ``|`` escaped."""
    return html.escape(re.sub(r"[\r\n]+", " ", str(text)), quote=False).replace("|", "\\|")


def to_markdown(header: Sequence[str], body: Sequence[Sequence[str]], caption: str = "",
                note: str = "", n_left: int = 1, notice: str = "") -> str:
    esc = [[md_escape(c) for c in row] for row in [header, *body]]
    caption, notice, note = md_escape(caption), md_escape(notice), md_escape(note)
    lines = []
    if caption:
        lines += [f"**{caption}**", ""]
    if notice:
        lines += [f"*{notice}*", ""]
    lines.append("| " + " | ".join(esc[0]) + " |")
    lines.append("|" + "|".join(["---"] * n_left + ["---:"] * (len(header) - n_left)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_html(header: Sequence[str], body: Sequence[Sequence[str]], caption: str = "",
            note: str = "", notice: str = "") -> str:
    """The table as a small self-contained HTML page: Snakemake's report shows HTML results
    inline (a CSV there is only a download)."""
    esc = html.escape
    rows = ["<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body]
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
             "body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:3px 8px}td+td,th+th{text-align:right}"
             "</style></head><body>"]
    if caption:
        parts.append(f"<p><b>{esc(caption)}</b></p>")
    if notice:
        parts.append(f"<p><i>{esc(notice)}</i></p>")
    parts.append("<table>" + "".join(rows) + "</table>")
    if note:
        parts.append(f"<p>{esc(note)}</p>")
    return "".join(parts) + "</body></html>\n"


def write_md_html(md_path: str | Path, header: Sequence[str], body: Sequence[Sequence[str]],
                  caption: str = "", note: str = "", n_left: int = 1, notice: str = ""
                  ) -> list[Path]:
    """``<name>.md`` and ``<name>.html`` of one formatted table."""
    md = Path(md_path)
    write_text(md, to_markdown(header, body, caption, note, n_left=n_left, notice=notice))
    write_text(md.with_suffix(".html"), to_html(header, body, caption, note, notice))
    return [md, md.with_suffix(".html")]


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


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.I)


def csv_safe(value):
    """A string cell a spreadsheet would run as a formula, prefixed with ``'``; other values
    (numbers, and strings that are plain numbers such as ``-0.5``) unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def write_csv(path: str | Path, df: pd.DataFrame) -> None:
    """The table as CSV; string cells neutralised by :func:`csv_safe` (the header too)."""
    df = df.copy()
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):  # object or string columns
            df[col] = df[col].map(csv_safe)
    df.columns = [csv_safe(c) if isinstance(c, str) else c for c in df.columns]
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def write_table(out_prefix: str | Path, df: pd.DataFrame, index_cols: Sequence[str],
                value_cols: Sequence[str], caption: str, *, note: str = "",
                titles: dict[str, str] | None = None, notice: str = "") -> list[Path]:
    """Write ``<prefix>.csv`` (all columns), ``.md`` and ``.tex`` (formatted cells); ``notice``
    (what the numbers are built from, :func:`prefbias.plan.provenance_notice`) joins the
    caption."""
    prefix = Path(out_prefix)
    header, body = display(df, index_cols, value_cols, titles)
    caption = caption.rstrip(".") + "."
    n_seeds = int(df["n_seeds"].max()) if "n_seeds" in df and len(df) else 1
    std_note = (f"Mean ± std over {n_seeds} seeds. " if n_seeds > 1 else "")
    full_note = (std_note + note).strip()
    paths = [prefix.with_suffix(".csv"), prefix.with_suffix(".md"), prefix.with_suffix(".tex")]
    write_csv(paths[0], df)
    paths += write_md_html(paths[1], header, body, caption, full_note, n_left=len(index_cols),
                           notice=notice)[1:]
    tex_caption = " ".join(s for s in (caption, notice, full_note) if s)
    write_text(paths[2], to_latex(header, body, tex_caption, prefix.name))
    return paths
