"""``prefbias eval-prompts``, ``prefbias generate``, ``prefbias style-shard``,
``prefbias style-gather`` (generation and stylized preference sets)."""

from __future__ import annotations

import argparse
from typing import Any

from prefbias.cli import spec_arg


def _backend_opts(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"model_name": args.model_name}
    if spec["backend"] == "openai":
        opts.update(spec.get("openai") or {})
    if spec["backend"] == "hf" and getattr(args, "batch_size", None):
        opts["batch_size"] = args.batch_size
    if spec["backend"] == "vllm":
        opts.update(spec.get("vllm") or {})
    return opts


def _model_arg(spec: dict[str, Any], args: argparse.Namespace) -> str:
    # hf/vllm load the directory; an OpenAI-compatible endpoint serves the model by name
    if spec["backend"] == "openai":
        return (spec.get("openai") or {}).get("model") or args.model_name
    return args.model_dir


def _eval_prompts(args: argparse.Namespace) -> int:
    from prefbias.generation.prompts import write_prompt_set

    sets = args.spec["prompt_sets"]
    if args.promptset not in sets:
        raise SystemExit(f"prompt set {args.promptset!r} is not in generation.prompt_sets "
                         f"({sorted(sets)})")
    write_prompt_set(args.prefs, args.out, int(sets[args.promptset]),
                     int(args.spec["prompt_seed"]), source=args.spec["prompt_source"])
    return 0


def _generate(args: argparse.Namespace) -> int:
    from prefbias.generation.base import Sampling, load_prompts, run_resumable
    from prefbias.generation.factory import make_backend

    spec = args.spec
    requests = load_prompts(args.prompts)
    sampling = Sampling.from_dict(spec["sampling"])
    backend = make_backend(spec["backend"], _model_arg(spec, args), **_backend_opts(spec, args))
    run_resumable(backend, requests, sampling, args.out)
    return 0


def _style_shard(args: argparse.Namespace) -> int:
    from prefbias.generation.factory import make_backend
    from prefbias.generation.styles import run_shard

    spec = args.spec
    prefs = dict(p.split("=", 1) for p in args.prefs)
    backend = make_backend(spec["backend"], _model_arg(spec, args), **_backend_opts(spec, args))
    run_shard(backend, prefs, args.style, args.shard, args.num_shards, spec, args.out)
    return 0


def _style_gather(args: argparse.Namespace) -> int:
    from prefbias.generation.styles import gather

    gather(args.shards, args.style, args.spec, args.out_dir, splits=args.splits)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-prompts", help="draw an evaluation prompt set (judge, reward)")
    p.add_argument("--prefs", required=True, help="ultrafeedback test preference pairs (JSONL)")
    p.add_argument("--promptset", required=True, help="a key of generation.prompt_sets")
    p.add_argument("--spec", type=spec_arg, required=True, help="the generation section (JSON)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_eval_prompts)

    p = sub.add_parser("generate", help="generate answers to a prompt set (resumable)")
    p.add_argument("--model-dir", required=True, help="model directory (hf, vllm)")
    p.add_argument("--model-name", required=True, help="model id recorded in the rows")
    p.add_argument("--prompts", required=True, help="eval prompt set (JSONL)")
    p.add_argument("--spec", type=spec_arg, required=True, help="the generation section (JSON)")
    p.add_argument("--batch-size", type=int, default=None, help="hf backend batch size")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_generate)

    p = sub.add_parser("style-shard", help="rewrite one shard of chosen answers in a style")
    p.add_argument("--style", required=True)
    p.add_argument("--shard", type=int, required=True, help="0-based shard index")
    p.add_argument("--num-shards", type=int, required=True)
    p.add_argument("--prefs", nargs="+", required=True, metavar="SPLIT=PATH",
                   help="source preference sets, e.g. train=.../train.jsonl test=.../test.jsonl")
    p.add_argument("--model-dir", required=True, help="rewriter model directory")
    p.add_argument("--model-name", required=True, help="rewriter model id")
    p.add_argument("--spec", type=spec_arg, required=True, help="the styles section (JSON)")
    p.add_argument("--batch-size", type=int, default=None, help="hf backend batch size")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_style_shard)

    p = sub.add_parser("style-gather", help="gather style shards into preference sets + stats")
    p.add_argument("--style", required=True)
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--spec", type=spec_arg, required=True, help="the styles section (JSON)")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--out-dir", required=True, help="W/data/prefs/ultrafeedback-<style>")
    p.set_defaults(func=_style_gather)
