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

    fetch_model(args.spec, args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-tiny-model",
                       help="random-initialised tiny stand-in of a real architecture + "
                       "locally trained tokenizer with its chat template")
    p.add_argument("--spec", type=spec_arg, required=True, help="the model's config entry (JSON)")
    p.add_argument("--corpus", nargs="+", default=[], help="JSON/JSONL/text files for the BPE")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=_build_tiny)

    p = sub.add_parser("fetch-model", help="snapshot a hub model at its pinned revision")
    p.add_argument("--spec", type=spec_arg, required=True, help="{repo, revision} (JSON)")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=_fetch)
