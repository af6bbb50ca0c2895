"""``prefbias warm -- CMD ...``: run CMD (e.g. snakemake) with warm fork servers for its jobs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("prefbias.warm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "warm", help="run a command whose prefbias jobs are forked from warm servers",
        description="Run CMD with PREFBIAS_FORKSERVER_DIR set: every `prefbias` job (and HELM's "
                    "helm-run) is forked from a server that imported torch, transformers and "
                    "crfm-helm once, instead of importing them again (prefbias.forkserver). "
                    "Results are identical; servers stop when CMD ends. Local runs only.")
    p.add_argument("--dir", default=None,
                   help="socket directory (default: a new temporary directory, removed at "
                        "the end); server logs are <kind>-<hash>.log there")
    p.add_argument("--configfile", action="append", default=[],
                   help="config overlays of the run (as given to snakemake): start the HELM "
                        "server for its `helm` section at once, not when the first HELM job "
                        "needs it")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    p.set_defaults(func=run)


def prestarts(configfiles: list[str]) -> list[dict]:
    """The training server always; the HELM server when the config names a usable HELM env."""
    from prefbias import warmup

    out = [{"kind": "main", "python": sys.executable, "target": "prefbias.cli:main",
            "preload": warmup.main_preload()}]
    if not configfiles:
        return out
    from prefbias.config import load_config
    from prefbias.evaluation.helm_run import HelmError, helm_bin_dir, helm_environment

    cfg = load_config(Path("config.yaml"), *map(Path, configfiles))
    spec = cfg["helm"]
    try:
        python = str(helm_bin_dir(spec) / "python")
    except HelmError as e:
        log.info("no HELM server started ahead: %s", e)
        return out
    out.append({"kind": "helm", "python": python, "target": "helm.benchmark.run:main",
                "preload": list(warmup.HELM),
                "env": helm_environment(spec, spec.get("fixtures"))})
    return out


def run(args: argparse.Namespace) -> int:
    from prefbias.forkserver import warm_run

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise SystemExit("prefbias warm: no command given (prefbias warm -- snakemake ...)")
    return warm_run(cmd, args.dir, prestarts(args.configfile))
