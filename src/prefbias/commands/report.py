"""Report subcommands: tables, figures, reported-vs-reproduced, freeze / verify / unfreeze.

  prefbias report-table  NAME --results R --rows JSON [--dimensions JSON] [--templates JSON]
                         [--bootstrap JSON] --out-prefix R/tables/NAME
  prefbias report-figure NAME --results R --rows JSON [--dimensions JSON] [--templates JSON]
                         --out-prefix R/figures/NAME
  prefbias snakemake-report --out R/report.html --snakefile Snakefile --config-json JSON|FILE
                         TARGET...
  prefbias freeze   R --config-json JSON|FILE [--repo DIR] [--no-readonly]
  prefbias verify   R
  prefbias unfreeze R

``--rows`` is the JSON list of ``{id, label, seed, kind, instruct?}`` made by
``prefbias.report.rows.stylized_rows`` / ``sycophancy_rows`` (every seed; ``table3_pairs``:
``reward_pair_rows``, which add ``baseline``, ``baseline_label`` and ``file``); a table writes
``<prefix>.{csv,md,tex}`` and ``<prefix>_vs_paper.{csv,md}``; a figure ``<prefix>.{png,pdf}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from prefbias.report.catalog import FIGURES, HELM_TABLES, TABLES

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


def _json_list(text: str) -> list:
    value = json.loads(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError("expected a JSON list")
    return value


def _json_obj(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    from prefbias.report.rows import json_rows

    p.add_argument("--results", required=True, help="results/<run>")
    p.add_argument("--rows", required=True, type=json_rows,
                   help="JSON list of {id,label,seed,kind,instruct} (or a file holding it)")
    p.add_argument("--dimensions", type=_json_list, default=None, help="judge dimensions (JSON)")
    p.add_argument("--templates", type=_json_obj, default=None,
                   help="sycophancy answer templates {key: template} (JSON)")
    p.add_argument("--bootstrap", type=_json_obj, default=None,
                   help="config report.bootstrap {n, seed, ci} (JSON) for CIs computed here")
    p.add_argument("--out-prefix", required=True, help="output path without extension")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report-table", help="build one paper table (+ _vs_paper comparison)")
    p.add_argument("name", choices=TABLES)
    _common(p)
    p.set_defaults(func=run_table)

    p = sub.add_parser("report-figure", help="draw one paper figure (PNG + PDF)")
    p.add_argument("name", choices=FIGURES)
    _common(p)
    p.set_defaults(func=run_figure)

    p = sub.add_parser("snakemake-report",
                       help="Snakemake's HTML report of the run's targets (before the freeze)")
    p.add_argument("--out", required=True, help="results/<run>/report.html")
    p.add_argument("--snakefile", required=True, help="the workflow's main Snakefile")
    p.add_argument("--config-json", required=True,
                   help="the resolved config as JSON text, or a path to a JSON/YAML file")
    p.add_argument("targets", nargs="+", help="the files whose provenance the report shows")
    p.set_defaults(func=run_snakemake_report)

    p = sub.add_parser("freeze", help="write MANIFEST.json + CITATION.cff, make read-only")
    p.add_argument("results", help="results/<run>")
    p.add_argument("--config-json", required=True,
                   help="the resolved config as JSON text, or a path to a JSON/YAML file")
    p.add_argument("--repo", default=".", help="git checkout to record (default: cwd)")
    p.add_argument("--no-readonly", action="store_true", help="do not chmod -w")
    p.set_defaults(func=run_freeze)

    p = sub.add_parser("verify", help="check a frozen results directory against its manifest")
    p.add_argument("results")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("unfreeze", help="make a frozen results directory writable again")
    p.add_argument("results")
    p.set_defaults(func=run_unfreeze)


def _need(value, flag: str, name: str):
    if not value:
        raise SystemExit(f"prefbias report {name}: {flag} is required")
    return value


def run_table(args: argparse.Namespace) -> int:
    from prefbias.report import compare, paper, tables

    R, rows, name, prefix = args.results, args.rows, args.name, Path(args.out_prefix)
    vs = prefix.with_name(prefix.name + "_vs_paper")
    if name in ("table3", "table4", *HELM_TABLES):
        if name == "table3":
            df = tables.table3(R, rows, args.bootstrap)
        elif name == "table4":
            df = tables.table4(R, rows)
        else:
            df = tables.helm_table(R, rows, HELM_TABLES[name])
        rep = paper.reported_table(name)
        df = tables.paper_order(df, paper.row_order(name))
        cols = [c for c in rep["columns"]]
        caption, note = rep["caption"], ""
        if name == "table3":
            counts = tables.reward_prompt_counts(R, rows)
            if len(counts) == 1:  # the paper's caption, with this run's number of prompts
                caption = rep["caption_reproduced"].format(n=counts[0])
            note = ("Win rate: vs the base model; validation loss and accuracy: on the held-out "
                    "preference pairs (SFT: loss per token); 95% bootstrap CI in brackets.")
        elif name in HELM_TABLES:
            note = "95% bootstrap CI over the scenario's instances in brackets."
        tables.write_table(prefix, df, ["label"], cols, caption, note=note)
        compare.write_numeric(vs, name, df)
    elif name == "table3_pairs":  # rows: prefbias.report.rows.reward_pair_rows
        df = tables.reward_pairs_table(R, rows)
        ns = sorted({int(n) for n in df["n_prompts"].dropna()}) if len(df) else []
        caption = paper.load()["table3_pairs"]["caption"].format(
            n=ns[0] if len(ns) == 1 else "/".join(map(str, ns)) or "no")
        note = ("Each model's generations against its baseline's on the same prompts, scored by "
                "the reward model; 95% bootstrap CI over prompts in brackets; ties count one "
                "half. Table 3 holds every model against the base model."
                if len(df) else "No pairs configured (config reward_winrate.pairs).")
        tables.write_table(prefix, df, ["label", "baseline_label"], ["win_rate"], caption,
                           note=note, titles={"label": "Model"})
        compare.write_pairs(vs, df)
    elif name == "judge_scores":
        dims = _need(args.dimensions, "--dimensions", name)
        df = tables.judge_table(R, rows, dims)
        tables.write_table(prefix, df, ["label"], dims,
                           "LLM judge scores (1-5): mean [95% bootstrap CI over prompts]",
                           titles={d: d.capitalize() for d in dims})
        compare.write_claims(vs, paper.claims(figure="figure3", paper="stylized-dpo"),
                             "LLM judge (stylized-dpo Figure 3): reported claims vs reproduced",
                             judge=df, dimensions=dims)
    elif name == "sycophancy_answer":
        templates = _need(args.templates, "--templates", name)
        df = tables.answer_table(R, rows, list(templates))
        keys = [t for t in templates if t != "none"]
        tables.write_table(prefix, df, ["model", "label"], keys,
                           "Answer Suggestion score (accuracy with suggestion − without), "
                           "all datasets [95% CI]",
                           titles={k: templates[k].replace("{question}", "").strip()
                                   for k in keys} | {"label": "Variant"})
        compare.write_claims(vs, [c for c in paper.claims(paper="saa-orpo")
                                  if c["figure"] in ("figure2", "figure4")],
                             "Answer Suggestion (saa-orpo Figures 2, 4): reported vs reproduced",
                             answer=df)
    else:  # sycophancy_are_you_sure
        df = tables.ays_table(R, rows)
        tables.write_table(prefix, df, ["model", "label"], ["revision_rate"],
                           "Are You Sure: rate of revising a correct first answer [95% CI]",
                           titles={"label": "Variant"})
        compare.write_claims(vs, [c for c in paper.claims(paper="saa-orpo")
                                  if c["figure"] in ("figure3", "figure5")],
                             "Are You Sure (saa-orpo Figures 3, 5): reported vs reproduced",
                             ays=df)
    log.info("wrote %s.{csv,md,tex} and %s.{csv,md}", prefix, vs)
    return 0


def run_figure(args: argparse.Namespace) -> int:
    from prefbias.report import figures, tables

    R, rows, name, prefix = args.results, args.rows, args.name, args.out_prefix
    if name == "stylized_figure2":
        styles = [r for r in rows if r.get("kind") == "dpo" and r["label"] != "Ultrafeedback"]
        figures.figure2(R, styles or rows, prefix)
    elif name == "stylized_figure3":
        dims = _need(args.dimensions, "--dimensions", name)
        figures.figure3(tables.judge_table(R, rows, dims), dims, prefix)
    else:
        kind, variants, title = SAA_FIGURES[name]
        if kind == "answer":
            templates = _need(args.templates, "--templates", name)
            df = tables.answer_table(R, rows, list(templates))
            figures.answer_figure(df, templates, variants, prefix, title)
        else:
            figures.ays_figure(tables.ays_table(R, rows), variants, prefix, title)
    log.info("wrote %s.{png,pdf}", prefix)
    return 0


def _load_config(text: str) -> dict:
    s = text.strip()
    if s.startswith("{"):
        return json.loads(s)
    import yaml

    return yaml.safe_load(Path(s).read_text(encoding="utf-8"))


def run_snakemake_report(args: argparse.Namespace) -> int:
    from prefbias.report.html import snakemake_report

    out = snakemake_report(args.out, snakefile=args.snakefile,
                           config=_load_config(args.config_json), targets=args.targets)
    log.info("wrote %s", out)
    return 0


def run_freeze(args: argparse.Namespace) -> int:
    from prefbias.report import freeze

    m = freeze.freeze(args.results, _load_config(args.config_json), repo=args.repo,
                      readonly=not args.no_readonly)
    log.info("froze %s: %d files", args.results, len(m["files"]))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from prefbias.report import freeze

    problems = freeze.verify(args.results)
    for p in problems:
        print(p, file=sys.stdout)
    if problems:
        log.error("%s: %d problem(s)", args.results, len(problems))
        return 1
    print(f"{args.results}: intact")
    return 0


def run_unfreeze(args: argparse.Namespace) -> int:
    from prefbias.report import freeze

    freeze.make_writable(Path(args.results))
    return 0
