"""DPO step throughput: our trainer step vs TRL 1.16 DPOTrainer, same tiny model, same batch.

    OMP_NUM_THREADS=1 python benchmarks/bench_dpo.py            # CPU, prints dpo_speedup_vs_trl
    python benchmarks/bench_dpo.py --gpu-shape                  # Qwen2.5-0.5B-shaped, tokens/s, MFU

Ours uses precomputed reference log-probs (one policy forward/backward per step, as in the
pipeline); TRL runs with its defaults (reference forward every step), bf16/checkpointing off.
Each of ``--repeats`` (≥5) measures ``--steps`` optimizer steps; the median rate is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from prefbias.io import write_jsonl  # noqa: E402
from prefbias.train import synthetic  # noqa: E402
from prefbias.train.batching import encode_pairs, render_prompt  # noqa: E402
from prefbias.train.tasks import DPOTask  # noqa: E402


def ours_rate(model, task, batch, steps: int, repeats: int) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    model.train()

    def step():
        loss, _ = task.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - t))
    return statistics.median(rates)


def trl_rate(policy, ref, tok, rows, steps: int, repeats: int, tmp: Path) -> float:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    ds = Dataset.from_list([{"prompt": render_prompt(tok, r["prompt"]), "chosen": r["chosen"],
                             "rejected": r["rejected"]} for r in rows])
    rates = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:  # first step is warm-up
                self.t = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            rates.append((state.global_step - 1) / (time.perf_counter() - self.t))

    for _ in range(repeats):
        args = DPOConfig(output_dir=str(tmp / "trl"), bf16=False, gradient_checkpointing=False,
                         beta=0.1, max_length=256, per_device_train_batch_size=len(rows),
                         max_steps=steps + 1, learning_rate=1e-6, report_to=[], use_cpu=True,
                         logging_steps=10_000, save_strategy="no", disable_tqdm=True,
                         dataloader_drop_last=False)
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds,
                             processing_class=tok, callbacks=[Timer()])
        trainer.train()
    return statistics.median(rates)


def cpu_bench(a) -> None:
    from prefbias.models.load import load_causal_lm, load_tokenizer

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    pol_dir = synthetic.build_model(tmp / "policy", seed=1)
    ref_dir = synthetic.build_model(tmp / "ref", seed=2)
    tok = load_tokenizer(pol_dir)
    rows = synthetic.pref_rows(a.pairs, seed=3)
    write_jsonl(tmp / "p.jsonl", rows)
    ex, _ = encode_pairs(tmp / "p.jsonl", tok, max_length=256)
    ref = load_causal_lm(ref_dir, dtype=torch.float32, device="cpu")
    from prefbias.train.batching import collate
    from prefbias.train.losses import sequence_logps

    with torch.no_grad():
        b = collate(ex, tok.pad_token_id, pairs=True)
        rc, rr = sequence_logps(ref(input_ids=b["input_ids"], attention_mask=b["attention_mask"]
                                    ).logits, b["labels"]).chunk(2)
    table = {e.id: (float(c), float(r)) for e, c, r in zip(ex, rc, rr, strict=True)}
    task = DPOTask(tok.pad_token_id, 0.1, table)
    batch = task.collate(ex, "cpu")
    ours = ours_rate(load_causal_lm(pol_dir, dtype=torch.float32, device="cpu"), task, batch,
                     a.steps, a.repeats)
    trl = trl_rate(load_causal_lm(pol_dir, dtype=torch.float32, device="cpu"), ref, tok, rows,
                   a.steps, a.repeats, tmp)
    print(f"threads: {torch.get_num_threads()}  pairs/step: {a.pairs}  repeats: {a.repeats}")
    print(f"dpo_steps_per_s_ours: {ours:.2f}")
    print(f"dpo_steps_per_s_trl: {trl:.2f}")
    print(f"dpo_speedup_vs_trl: {ours / trl:.2f}")


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def gpu_bench(a) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from prefbias.train.losses import dpo_loss, sequence_logps, sft_loss

    dev = "cuda"
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=32768, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)

    def run(kind, bsz, seq):
        ids = torch.randint(0, cfg.vocab_size, (bsz, seq), device=dev)
        att = torch.ones_like(ids)
        labels = ids.clone()
        labels[:, : seq // 4] = -100
        refs = torch.zeros(bsz // 2, device=dev)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(input_ids=ids, attention_mask=att, use_cache=False).logits
                if kind == "sft":
                    loss = sft_loss(logits, labels)
                else:
                    c, r = sequence_logps(logits, labels).chunk(2)
                    loss = dpo_loss(c, r, refs, refs, 0.1)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(2):
            step()
        rates = []
        for _ in range(a.repeats):
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(a.steps):
                step()
            torch.cuda.synchronize()
            rates.append(a.steps * bsz * seq / (time.perf_counter() - t))
        tps = statistics.median(rates)
        mfu = 6 * n_params * tps / peak if peak else float("nan")
        print(f"{kind}_tokens_per_s: {tps:.0f}")
        print(f"{kind}_mfu: {mfu:.3f}")

    print(f"device: {name}  params: {n_params / 1e6:.0f}M")
    run("sft", a.sft_batch, a.seq)
    run("dpo", 2 * a.dpo_pairs, a.seq)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--gpu-shape", action="store_true")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--sft-batch", type=int, default=8)
    p.add_argument("--dpo-pairs", type=int, default=4)
    a = p.parse_args()
    if a.repeats < 5:
        p.error("--repeats must be >= 5")
    gpu_bench(a) if a.gpu_shape else cpu_bench(a)


if __name__ == "__main__":
    main()
