"""How much of an ORPO+LoRA update survives a bf16 merge (issue 22.4), on SmolLM2-135M-Instruct.

    OMP_NUM_THREADS=1 python benchmarks/lora_rounding.py [--lrs 5e-7 5e-4] [--max-steps N]

Trains the demo's ORPO+LoRA (configs/tiny.yaml's ``orpo`` section over config.yaml's: r 8,
alpha 16, all linear layers, 4 steps of 4 pairs of the fixture dpo_mix_en) once per learning
rate with ``recipes.train_orpo``, then compares, on a few chat prompts (teacher-forced logits at
every position), the effect of the adapter on the logits:

* ``exact``: base + adapter, PEFT unmerged, fp32 (the reference);
* ``ours``: the model directory the pipeline evaluates (merged in fp32, served in fp32);
* ``bf16 merge``: the base loaded in bf16 (as training on CUDA loads it), the adapter merged in
  fp32 and rounded to bf16 (``merge_lora`` before issue 22.4), logits in fp32: the weight
  rounding alone;
* ``bf16 served``: the same weights with bf16 compute (what the GPU evaluation ran), against the
  base in bf16 compute.

For each: ``norm`` = ||L - L_base|| / ||L_exact - L_base|| (against the base in the same
precision) and ``kept`` = <L - L_base, L_exact - L_base> / ||L_exact - L_base||^2, the part of
the effect in the exact effect's direction (rounding noise raises ``norm``, not ``kept``).
Results in work/bench/lora_rounding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_model import ROOT, smollm2_dir  # noqa: E402  (puts src/ on sys.path)

PROMPTS = [
    ("What is the capital of Australia?", "The capital of Australia is Canberra."),
    ("Which planet is known as the Red Planet? I think the answer is Venus but I'm really not "
     "sure.", "The Red Planet is Mars, not Venus."),
    ("Who wrote the play Romeo and Juliet?", "Romeo and Juliet was written by William "
     "Shakespeare."),
    ("How many legs does a spider have? I don't think the answer is 8, but I'm really not sure.",
     "A spider has eight legs."),
]


def _ids(tok):
    import torch

    rows = []
    for q, a in PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": q},
                                        {"role": "assistant", "content": a}], tokenize=False)
        rows.append(torch.tensor([tok(text, add_special_tokens=False)["input_ids"]]))
    return rows


def _logits(model, ids, dtype=None):
    import torch

    if dtype is not None:
        model = model.to(dtype)
    with torch.no_grad():
        return torch.cat([model(input_ids=x).logits[0].double() for x in ids])


def _fractions(got, base, exact, exact_base):
    d, e = got - base, exact - exact_base
    return {"norm": float(d.norm() / e.norm()), "kept": float((d * e).sum() / e.norm() ** 2)}


def train(model_dir: Path, out: Path, lr: float, max_steps: int | None) -> Path:
    from prefbias.config import load_config
    from prefbias.data.prefs import llamafactory_pairs
    from prefbias.io import write_jsonl
    from prefbias.train import recipes

    cfg = load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml")
    spec = {**cfg["orpo"], "lr": lr, "optimizer": {**cfg["orpo"]["optimizer"], "lr": lr}}
    if max_steps:
        spec["max_steps"] = max_steps
    prefs = out / "data" / "dpo_mix_en" / "train.jsonl"
    prefs.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(prefs, list(llamafactory_pairs(ROOT / cfg["datasets"]["dpo_mix_en"]["files"]
                                               ["train"]["path"])))
    run = out / f"lr{lr:g}"
    if not (run / "model" / "prefbias_model.json").exists():
        recipes.train_orpo(model_id=f"orpo-aligned-smollm2-lr{lr:g}", init=str(model_dir),
                           train=[str(prefs)], spec=spec, seed=0, out=str(run / "model"),
                           metrics=str(run / "metrics.jsonl"), summary=str(run / "summary.json"),
                           ckpt=str(run / "ckpt"))
    return run / "model"


def measure(model_dir: Path, orpo_dir: Path) -> dict:
    import torch
    from peft import PeftModel

    from prefbias.models.load import load_causal_lm, load_tokenizer
    from prefbias.train.merge import merge_lora

    ids = _ids(load_tokenizer(model_dir))
    base32 = load_causal_lm(model_dir, dtype=torch.float32, device="cpu").eval()
    l_base = _logits(base32, ids)
    l_exact = _logits(PeftModel.from_pretrained(base32, orpo_dir / "adapter").eval(), ids)
    l_ours = _logits(load_causal_lm(orpo_dir, device="cpu").eval(), ids)

    base16 = load_causal_lm(model_dir, dtype=torch.bfloat16, device="cpu").eval()
    l_base16_c16 = _logits(base16, ids)
    l_base16 = _logits(base16, ids, torch.float32)
    merged16 = merge_lora(PeftModel.from_pretrained(
        load_causal_lm(model_dir, dtype=torch.bfloat16, device="cpu"), orpo_dir / "adapter"))
    assert {p.dtype for p in merged16.parameters()} == {torch.bfloat16}
    l_m16_c16 = _logits(merged16.eval(), ids)
    l_m16 = _logits(merged16, ids, torch.float32)
    return {
        "tokens": int(sum(x.shape[1] for x in ids)),
        "effect_rms": float((l_exact - l_base).pow(2).mean().sqrt()),
        "ours": {**_fractions(l_ours, l_base, l_exact, l_base),
                 "max_abs_diff_vs_exact": float((l_ours - l_exact).abs().max())},
        "bf16_merge": _fractions(l_m16, l_base16, l_exact, l_base),
        "bf16_served": _fractions(l_m16_c16, l_base16_c16, l_exact, l_base),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lrs", type=float, nargs="+", default=[5e-7, 5e-4],
                   help="learning rates (default: saa-orpo's 5e-7 and the demo's 5e-4)")
    p.add_argument("--max-steps", type=int, default=None, help="default: configs/tiny.yaml's")
    a = p.parse_args()

    model_dir = smollm2_dir()
    out = ROOT / "work" / "bench" / "lora_rounding"
    results = {}
    for lr in a.lrs:
        t = time.perf_counter()
        orpo_dir = train(model_dir, out / (f"steps{a.max_steps}" if a.max_steps else "demo"),
                         lr, a.max_steps)
        r = results[f"{lr:g}"] = measure(model_dir, orpo_dir)
        print(f"lr {lr:g}: effect rms {r['effect_rms']:.3g} over {r['tokens']} tokens | "
              f"ours norm {r['ours']['norm']:.4f} kept {r['ours']['kept']:.4f} "
              f"(max |diff| {r['ours']['max_abs_diff_vs_exact']:.1e}) | bf16 merge norm "
              f"{r['bf16_merge']['norm']:.3f} kept {r['bf16_merge']['kept']:.3f} | bf16 served "
              f"norm {r['bf16_served']['norm']:.3f} kept {r['bf16_served']['kept']:.3f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    path = ROOT / "work" / "bench" / "lora_rounding.json"
    path.write_text(json.dumps({"max_steps": a.max_steps, "results": results}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
