"""Report subcommands: tables, figures, Snakemake's HTML report, freeze / verify / unfreeze.

  prefbias report-table  NAME --results R --spec JSON|FILE --out-prefix R/tables/NAME
  prefbias report-figure NAME --results R --spec JSON|FILE --out-prefix R/figures/NAME
  prefbias snakemake-report --out R/report.html --snakefile Snakefile --config-json JSON|FILE
                         TARGET...
  prefbias freeze   R --config-json JSON|FILE [--repo DIR] [--no-readonly]
  prefbias verify   R
  prefbias unfreeze R

``--spec`` is :func:`prefbias.plan.report_spec` of the item: ``rows`` (``{id, label, seed, kind,
...}`` over every seed), ``notice`` (stand-ins, joined to the caption) and the item's
``dimensions`` / ``templates`` / ``bootstrap``. A table writes ``<prefix>.{csv,md,tex}`` and
``<prefix>_vs_paper.{csv,md}``; a figure ``<prefix>.{png,pdf}`` (prefbias.report.build).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from prefbias.cli import spec_arg
from prefbias.plan import FIGURES, TABLES

log = logging.getLogger("prefbias.report")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, help="results/<run>")
    p.add_argument("--spec", required=True, type=spec_arg,
                   help="JSON of prefbias.plan.report_spec: rows, notice, dimensions / "
                        "templates / bootstrap")
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


def run_table(args: argparse.Namespace) -> int:
    from prefbias.report.build import build_table

    build_table(args.name, args.results, args.spec, args.out_prefix)
    return 0


def run_figure(args: argparse.Namespace) -> int:
    from prefbias.report.build import build_figure

    build_figure(args.name, args.results, args.spec, args.out_prefix)
    return 0


def _load_config(text: str) -> dict:
    """The resolved config: JSON text, a JSON file (W/resolved_config.json) or a YAML file. A
    JSON file is read as JSON: YAML would read a float such as ``1e-05`` as a string."""
    s = text.strip()
    if s.startswith("{"):
        return json.loads(s)
    body = Path(s).read_text(encoding="utf-8")
    if s.endswith(".json") or body.lstrip().startswith("{"):
        return json.loads(body)
    import yaml

    return yaml.safe_load(body)


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
    for p in problems + freeze.explain(args.results, problems):
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
