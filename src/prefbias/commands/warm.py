"""``prefbias warm -- CMD ...``: run CMD (e.g. snakemake) with warm fork servers for its jobs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "warm", help="run a command whose prefbias jobs are forked from warm servers",
        description="Run CMD with PREFBIAS_FORKSERVER_DIR set: every `prefbias` job (and HELM's "
                    "helm-run) is forked from a server that imported torch, transformers and "
                    "crfm-helm once, instead of importing them again (prefbias.forkserver). "
                    "Results are identical; servers stop when CMD ends. Local runs only.")
    p.add_argument("--dir", default=None,
                   help="socket directory (default: a new temporary directory, removed at "
                        "the end); server logs are <kind>.log there")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from prefbias.forkserver import warm_run

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise SystemExit("prefbias warm: no command given (prefbias warm -- snakemake ...)")
    return warm_run(cmd, args.dir)
