"""The ``prefbias`` command line: one subcommand per pipeline step.

Subcommands live in :mod:`prefbias.commands`; every module there defines
``register(subparsers)`` that adds its parsers and sets ``func`` (called with the parsed args).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys

from prefbias import forkserver
from prefbias.io import DataError

log = logging.getLogger("prefbias")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefbias", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Subcommands that import neither torch nor transformers set in_process=True: under
    # `prefbias warm` they run in the calling process (about a second) instead of waiting for,
    # or forking from, the training server (which takes minutes to preload at the start).
    parser.set_defaults(in_process=False)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (argv is None and not args.in_process and forkserver.enabled()
            and not forkserver.in_child()):
        # under `prefbias warm`: a warm server forks this job (prefbias.forkserver)
        from prefbias import warmup

        rc = forkserver.run_via_server(
            "main", python=sys.executable, target="prefbias.cli:main", argv=sys.argv,
            preload=warmup.main_preload(), on_fallback=lambda m: sys.stderr.write(
                f"prefbias: {m}; running in this process\n"))
        if rc is not None:
            return rc
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
