"""The ``prefbias`` command line: one subcommand per pipeline step.

Subcommands live in :mod:`prefbias.commands`; every module there defines
``register(subparsers)`` that adds its parsers and sets ``func`` (called with the parsed args).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys

from prefbias.io import DataError

log = logging.getLogger("prefbias")


DESCRIPTION = """\
prefbias: the steps of the prefbias pipeline, one subcommand each.

Snakemake calls these for you (`make demo`, `snakemake --profile slurm`); run one by hand to
debug a step, e.g. `prefbias verify results/paper` checks a frozen results directory, and
`prefbias preflight --configfile config.yaml` checks a Slurm site before a cluster run.
`prefbias COMMAND --help` lists a step's arguments."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefbias", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import prefbias.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"prefbias.commands.{info.name}")
        module.register(sub)
    return parser


def spec_arg(text: str) -> dict:
    """argparse type for ``--spec``: a JSON object (rules pass config sections this way)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--spec is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--spec must be a JSON object")
    return value


def quiet_progress_bars(stream=None) -> bool:
    """When stderr is not a terminal (a rule's ``2> {log}``), switch off the libraries' tqdm
    bars (tqdm itself, huggingface_hub, transformers' weight loading, datasets, vLLM), whose
    carriage returns flood a log file; the trainer writes its own plain progress lines. Must run
    before tqdm is imported (tqdm reads ``TQDM_*`` then). Returns whether it did."""
    stream = sys.stderr if stream is None else stream
    if hasattr(stream, "isatty") and stream.isatty():
        return False
    for var in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS",
                "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(var, "1")
    return True


def main(argv: list[str] | None = None) -> int:
    quiet_progress_bars()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from prefbias.hpc.gpu import GpuMissing, require_cuda_if_allocated

    try:
        require_cuda_if_allocated()  # a job given GPUs never falls back to the CPU
    except GpuMissing as e:
        log.error("%s", e)
        return 3
    try:
        rc = args.func(args)
    except DataError as e:
        log.error("bad input: %s", e)
        return 2
    except FileNotFoundError as e:
        log.error("missing file: %s", e)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
