"""Generation throughput (not a test).

    python benchmarks/bench_generation.py [--model tiny|smollm2] [--prompts 16]
        [--new-tokens 32] [--batch-size 8]
        -> hf_batched_s, hf_sequential_s, ..._tokens_per_s, hf_batch_speedup: X
    python benchmarks/bench_generation.py --vllm [--hidden 1024 --layers 8 --heads 16 ...]
        -> vllm_output_tokens_per_s (GPU environment with vllm; builds a random model)

The hf mode builds the tiny random Qwen2 of configs/tiny.yaml (hidden 64, 2 layers) -- or, with
``--model smollm2``, uses the real SmolLM2-135M-Instruct on the demo's Answer Suggestion prompts --
and times greedy generation of the same prompts batched (left padding, length-sorted) and one at a
time, interleaved, median of ``--repeats``; the speedup is the ratio of the median wall times.
Set OMP_NUM_THREADS=1 on small machines for stable numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CORPUS = ["hello world how are you today", "the quick brown fox jumps over the lazy dog",
          "what is the capital of France? Paris is the capital of France.",
          "Explain photosynthesis in simple words for a child."] * 25


def _prompts(n: int):
    from prefbias.generation.base import GenRequest

    words = CORPUS[0].split() + CORPUS[1].split()
    return [GenRequest(f"b{i}", [{"role": "user",
                                  "content": " ".join(words[(i * 3) % len(words):] + words)
                                  [: 40 + 17 * (i % 7)]}]) for i in range(n)]


def _demo_prompts(n: int):
    """The first ``n`` Answer Suggestion prompts of the demo's data (real chat turns)."""
    from real_model import ROOT

    from prefbias.data.sycophancy_sets import answer_rows
    from prefbias.generation.base import GenRequest

    spec = yaml.safe_load((ROOT / "config.yaml").read_text())["sycophancy"]
    rows = answer_rows(ROOT / "tests/fixtures/data/sycophancy_eval/answer_demo.jsonl",
                       spec["answer_templates"])
    return [GenRequest(r["id"], r["messages"]) for r in rows[:n]]


def bench_hf(args) -> None:
    import statistics

    import torch

    from prefbias.generation.base import Sampling
    from prefbias.generation.factory import make_backend
    from prefbias.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as d:
        if args.model == "smollm2":
            from real_model import smollm2_dir

            model = smollm2_dir()
            reqs = _demo_prompts(args.prompts)
        else:
            model = Path(d) / "tiny"
            build_tiny_model(model, {"seed": 1, "hidden_size": args.hidden,
                                     "num_layers": args.layers, "num_heads": args.heads,
                                     "num_kv_heads": args.kv_heads,
                                     "intermediate_size": 2 * args.hidden,
                                     "vocab_size": 1024}, CORPUS)
            reqs = _prompts(args.prompts)
        b = make_backend("hf", str(model), batch_size=args.batch_size)
        s = Sampling(temperature=0, max_new_tokens=args.new_tokens)
        b.generate(reqs[:2], s)  # warm-up
        secs: dict[str, list[float]] = {"batched": [], "sequential": []}
        tokens: dict[str, int] = {}
        modes = [("batched", args.batch_size), ("sequential", 1)]
        for r in range(args.repeats):  # interleaved, order alternating: load hits both alike
            for mode, bs in (modes if r % 2 == 0 else modes[::-1]):
                b.batch_size = bs
                t0 = time.perf_counter()
                res = b.generate(reqs, s)
                secs[mode].append(time.perf_counter() - t0)
                tokens[mode] = sum(r.completion_tokens for r in res)
    med = {m: statistics.median(v) for m, v in secs.items()}
    for m in ("batched", "sequential"):
        print(f"hf_{m}_s: {med[m]:.2f}  ({' '.join(f'{t:.2f}' for t in secs[m])})")
        print(f"hf_{m}_tokens_per_s: {tokens[m] / med[m]:.1f}")
    print(f"hf_batch_speedup: {med['sequential'] / med['batched']:.2f}")
    print(f"(model={args.model} prompts={len(reqs)} new_tokens={args.new_tokens} "
          f"batch_size={args.batch_size} threads={torch.get_num_threads()}, greedy, "
          f"median of {args.repeats}; completion tokens batched {tokens['batched']}, "
          f"sequential {tokens['sequential']})")


def bench_vllm(args) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from prefbias.generation.base import Sampling
    from prefbias.generation.factory import make_backend
    from prefbias.models.tiny import train_tokenizer

    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / "rand"
        tok = train_tokenizer(CORPUS, args.vocab)
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=args.hidden,
                          intermediate_size=4 * args.hidden, num_hidden_layers=args.layers,
                          num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                          max_position_embeddings=4096, tie_word_embeddings=True,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        torch.manual_seed(0)
        Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(model)
        tok.save_pretrained(model)
        b = make_backend("vllm", str(model), gpu_memory_utilization=0.8)
        reqs = _prompts(args.prompts)
        s = Sampling(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=args.new_tokens)
        b.generate(reqs[:8], s)
        t0 = time.perf_counter()
        res = b.generate(reqs, s)
        dt = time.perf_counter() - t0
    n = sum(r.completion_tokens for r in res)
    print(f"vllm_output_tokens_per_s: {n / dt:.1f}")
    print(f"(prompts={args.prompts} new_tokens={args.new_tokens} hidden={args.hidden} "
          f"layers={args.layers} heads={args.heads}, {n} tokens in {dt:.2f}s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vllm", action="store_true", help="benchmark vLLM on a random model")
    p.add_argument("--prompts", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="median of this many (>= 5)")
    p.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                   help="hf mode: the tiny random Qwen2, or the real SmolLM2-135M-Instruct on "
                   "the demo's Answer Suggestion prompts")
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--kv-heads", type=int, default=None)
    p.add_argument("--vocab", type=int, default=4096)
    args = p.parse_args()
    if not args.vllm and args.repeats < 5:
        p.error("--repeats must be >= 5")
    defaults = ({"prompts": 512, "new_tokens": 256, "hidden": 1024, "layers": 8, "heads": 16,
                 "kv_heads": 4} if args.vllm else
                {"prompts": 16, "new_tokens": 32, "hidden": 64, "layers": 2, "heads": 4,
                 "kv_heads": 2})
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    (bench_vllm if args.vllm else bench_hf)(args)


if __name__ == "__main__":
    main()
