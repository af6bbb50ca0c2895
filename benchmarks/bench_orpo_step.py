"""One ORPO+LoRA training step of the real SmolLM2-135M-Instruct, as the demo would run it.

    OMP_NUM_THREADS=1 python benchmarks/bench_orpo_step.py [--pairs 2] [--tokens 256]

Our ORPOTask (NLL on the completion, lambda 0.1) on a LoRA model (r 8, alpha 16, all linear
layers: the orpo.lora section), fp32 on CPU, ``--pairs`` pairs (2 x pairs sequences) padded to
about ``--tokens`` tokens each; median seconds a step over ``--repeats`` after a warm-up step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_model import pref_rows, smollm2_dir  # noqa: E402  (puts src/ on sys.path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from prefbias.io import write_jsonl
    from prefbias.models.load import load_causal_lm, load_tokenizer
    from prefbias.train.batching import encode_pairs
    from prefbias.train.tasks import ORPOTask

    model_dir = smollm2_dir()
    tok = load_tokenizer(model_dir)
    # prompts of ~30% of --tokens (with the default system prompt), completions long enough to
    # be cut at --tokens (encode_pairs truncates completions to fit max_length)
    rows = pref_rows(a.pairs, seed=5, prompt_words=(a.tokens // 4, a.tokens // 4),
                     completion_words=(a.tokens, a.tokens))
    tmp = Path(tempfile.mkdtemp())
    write_jsonl(tmp / "p.jsonl", rows)
    ex, _ = encode_pairs(tmp / "p.jsonl", tok, max_length=a.tokens)
    task = ORPOTask(tok.pad_token_id, 0.1)
    batch = task.collate(ex, "cpu")
    model = get_peft_model(load_causal_lm(model_dir, dtype=torch.float32, device="cpu"),
                           LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                      lora_dropout=0.0, target_modules="all-linear"))
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4)
    model.train()

    def step():
        loss, _ = task.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    shape = tuple(batch["input_ids"].shape)
    each = " ".join(f"{t:.2f}" for t in times)
    print(f"orpo_lora_step_s: {statistics.median(times):.2f}  ({each})  "
          f"batch {shape[0]}x{shape[1]} tokens, threads {torch.get_num_threads()}, "
          f"trainable {sum(q.numel() for q in params)}")


if __name__ == "__main__":
    main()
