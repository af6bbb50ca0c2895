"""Data subcommands: fetch-dataset, sft-data, prefs, saa, sycophancy-sets."""

from __future__ import annotations

import argparse

from prefbias.cli import spec_arg


def _fetch(args: argparse.Namespace) -> int:
    from prefbias.data.fetch import fetch

    fetch(args.spec, args.name, args.outdir, splits=args.split, retries=args.retries,
          timeout=args.timeout)
    return 0


def _sft(args: argparse.Namespace) -> int:
    from prefbias.data.sft import build_sft

    build_sft(args.input, args.tokenizer, args.out, max_prompt_tokens=args.max_prompt_tokens,
              max_completion_tokens=args.max_completion_tokens)
    return 0


def _prefs(args: argparse.Namespace) -> int:
    from prefbias.data.prefs import build_prefs

    build_prefs(args.kind, args.input, args.out, source=args.source)
    return 0


def _saa(args: argparse.Namespace) -> int:
    from prefbias.data.saa import build_saa

    build_saa(args.bct, args.control, args.out, n_correct=args.n_correct,
              n_incorrect=args.n_incorrect, seed=args.seed, stats_out=args.stats)
    return 0


def _sycophancy(args: argparse.Namespace) -> int:
    from prefbias.data.sycophancy_sets import build_sycophancy_sets

    build_sycophancy_sets(args.answer, args.are_you_sure, args.outdir, args.spec)
    return 0


def _nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch-dataset", help="fetch one raw dataset to <outdir>/<split>.jsonl")
    p.add_argument("--spec", type=spec_arg, required=True,
                   help="JSON of the config['datasets'][NAME] entry")
    p.add_argument("--name", required=True, help="dataset name (for messages)")
    p.add_argument("--outdir", required=True, help="W/raw/NAME")
    p.add_argument("--split", action="append", default=None,
                   help="fetch only this split (repeatable; default: every split)")
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per download attempt")
    p.set_defaults(func=_fetch)

    p = sub.add_parser("sft-data", help="single-turn, length-filtered SFT set from smol-smoltalk")
    p.add_argument("--input", required=True, help="raw/smol_smoltalk/<split>.jsonl")
    p.add_argument("--tokenizer", required=True, help="model directory with the tokenizer")
    p.add_argument("--max-prompt-tokens", type=int, required=True)
    p.add_argument("--max-completion-tokens", type=int, required=True)
    p.add_argument("--out", required=True,
                   help="data/sft/<split>.jsonl (stats go to <split>.stats.json beside it)")
    p.set_defaults(func=_sft)

    p = sub.add_parser("prefs", help="normalise a preference set to preference pairs")
    p.add_argument("--kind", choices=["ultrafeedback", "sharegpt", "alpaca", "llamafactory"],
                   required=True, help="llamafactory: sharegpt or alpaca, from the columns")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="W/data/prefs/<prefset>/<split>.jsonl")
    p.add_argument("--source", default=None, help="source label (sharegpt; default dpo_mix_en)")
    p.set_defaults(func=_prefs)

    p = sub.add_parser("saa", help="Suggestion-Assessment Alignment set from BCT data")
    p.add_argument("--bct", required=True, help="bct_non_cot.jsonl")
    p.add_argument("--control", required=True, help="control_non_cot.jsonl (row i = twin)")
    p.add_argument("--n-correct", type=_nonneg, required=True)
    p.add_argument("--n-incorrect", type=_nonneg, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="W/data/prefs/saa/train.jsonl")
    p.add_argument("--stats", default=None, help="default: saa.stats.json beside --out")
    p.set_defaults(func=_saa)

    p = sub.add_parser("sycophancy-sets", help="normalise sycophancy-eval answer/are_you_sure")
    p.add_argument("--answer", required=True, help="raw/sycophancy_answer/test.jsonl")
    p.add_argument("--are-you-sure", required=True,
                   help="raw/sycophancy_are_you_sure/test.jsonl")
    p.add_argument("--spec", type=spec_arg, required=True,
                   help="JSON of config['sycophancy'] (answer_templates)")
    p.add_argument("--outdir", required=True, help="W/data/sycophancy")
    p.set_defaults(func=_sycophancy)
