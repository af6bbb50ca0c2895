"""DPO and ORPO step time: our trainer steps vs TRL 1.16, same model, same batch, one process.

    OMP_NUM_THREADS=1 python benchmarks/bench_dpo.py                  # tiny random Qwen2
    OMP_NUM_THREADS=1 python benchmarks/bench_dpo.py --model smollm2  # real SmolLM2-135M-Instruct
    python benchmarks/bench_dpo.py --gpu-shape                        # Qwen2.5-0.5B-shaped, MFU

DPO (full fine-tuning): ours uses precomputed reference log-probs (one policy forward/backward a
step, as in the pipeline); TRL runs (a) with its default reference forward every step and (b)
with ``precompute_ref_log_probs=True`` (reference pass before training, outside the timing).
ORPO (LoRA r=8, alpha=16, all linear layers, as the pipeline's orpo section): ours vs TRL's
ORPOTrainer with the same LoRA config. fp32, bf16/checkpointing off, every step on the same batch
of ``--pairs`` pairs, in one process. ``--repeats`` (>=5) rounds each time ``--steps`` steps of
every contender (after a warm-up step), in an order that rotates from round to round so that load
from other processes hits all alike; the median seconds a step is reported, and the speedups are
ratios of medians.
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
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from prefbias.io import write_jsonl  # noqa: E402
from prefbias.train import synthetic  # noqa: E402
from prefbias.train.batching import encode_pairs, render_prompt  # noqa: E402
from prefbias.train.tasks import DPOTask, ORPOTask  # noqa: E402

LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}


class Ours:
    """Our step (loss, backward, clip, AdamW step) on a fixed batch; one warm-up step first."""

    def __init__(self, model, task, batch):
        self.model, self.task, self.batch = model, task, batch
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-6)
        self.step()

    def step(self):
        self.model.train()
        loss, _ = self.task.loss(self.model, self.batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def __call__(self, steps: int) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - t) / steps


def _trl_timer(times: list[float]):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:  # step 0 is the warm-up
                self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == args.max_steps:
                times.append((time.perf_counter() - self.t) / (state.global_step - 1))

    return Timer()


def _trl_dataset(tok, rows):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": render_prompt(tok, r["prompt"]), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])


def _common_args(n_pairs: int, steps: int, max_length: int, tmp: Path) -> dict:
    return dict(output_dir=str(tmp / "trl"), bf16=False, gradient_checkpointing=False,
                max_length=max_length, per_device_train_batch_size=n_pairs,
                max_steps=steps + 1, learning_rate=1e-6, report_to=[], use_cpu=True,
                logging_steps=10_000, save_strategy="no", disable_tqdm=True,
                dataloader_drop_last=False, max_grad_norm=1.0)


def trl_dpo(policy, ref, tok, rows, max_length: int, tmp: Path, *, precompute: bool):
    """One call = a fresh DPOTrainer (a warm-up step + ``steps`` timed steps) on ``policy``."""
    from trl import DPOConfig, DPOTrainer

    ds = _trl_dataset(tok, rows)

    def run(steps: int) -> float:
        times: list[float] = []
        args = DPOConfig(beta=0.1, precompute_ref_log_probs=precompute,
                         **_common_args(len(rows), steps, max_length, tmp))
        DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds,
                   processing_class=tok, callbacks=[_trl_timer(times)]).train()
        return times[0]

    return run


def trl_orpo(load, tok, rows, max_length: int, tmp: Path):
    """One call = a fresh ORPOTrainer with LoRA on a freshly loaded base model."""
    from peft import LoraConfig
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    ds = _trl_dataset(tok, rows)

    def run(steps: int) -> float:
        times: list[float] = []
        args = ORPOConfig(beta=0.1, **_common_args(len(rows), steps, max_length, tmp))
        ORPOTrainer(model=load(), args=args, train_dataset=ds, processing_class=tok,
                    peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
                    callbacks=[_trl_timer(times)]).train()
        return times[0]

    return run


def interleaved(contenders: dict, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds a step per contender. Each round runs every contender once, the order
    rotating from round to round, so a change in machine load hits all of them alike."""
    names = list(contenders)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            times[n].append(contenders[n](steps))
    for n in names:
        print(f"  {n}: " + " ".join(f"{t:.3f}" for t in times[n]), flush=True)
    return {n: statistics.median(v) for n, v in times.items()}


def cpu_bench(a) -> None:
    from peft import LoraConfig, get_peft_model

    from prefbias.models.load import load_causal_lm, load_tokenizer
    from prefbias.train.batching import collate
    from prefbias.train.losses import sequence_logps

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    if a.model == "smollm2":
        from real_model import pref_rows, smollm2_dir

        pol_dir = ref_dir = smollm2_dir()  # the reference is the initial policy (as SFT -> DPO)
        rows = pref_rows(a.pairs, seed=3)
    else:
        pol_dir = synthetic.build_model(tmp / "policy", seed=1)
        ref_dir = synthetic.build_model(tmp / "ref", seed=2)
        rows = synthetic.pref_rows(a.pairs, seed=3)
    tok = load_tokenizer(pol_dir)
    write_jsonl(tmp / "p.jsonl", rows)
    ex, _ = encode_pairs(tmp / "p.jsonl", tok, max_length=a.max_length)
    assert len(ex) == len(rows), "a pair was dropped: raise --max-length"
    lengths = [len(e.prompt) + len(c) for e in ex for c in e.completions]

    def load(path=pol_dir):
        return load_causal_lm(path, dtype=torch.float32, device="cpu")

    ref = load(ref_dir).eval()
    with torch.no_grad():
        b = collate(ex, tok.pad_token_id, pairs=True)
        rc, rr = sequence_logps(ref(input_ids=b["input_ids"], attention_mask=b["attention_mask"]
                                    ).logits, b["labels"]).chunk(2)
    table = {e.id: (float(c), float(r)) for e, c, r in zip(ex, rc, rr, strict=True)}
    dpo = DPOTask(tok.pad_token_id, 0.1, table)
    print(f"model: {a.model}  threads: {torch.get_num_threads()}  pairs/step: {a.pairs}  "
          f"tokens/sequence: {min(lengths)}-{max(lengths)}  repeats: {a.repeats} x {a.steps} "
          f"step(s), interleaved, median", flush=True)
    # full fine-tuning DPO: one policy for all three (its weights drift; the cost does not)
    policy = load()
    res = interleaved({
        "dpo_ours": Ours(policy, dpo, dpo.collate(ex, "cpu")),
        "dpo_trl": trl_dpo(policy, ref, tok, rows, a.max_length, tmp, precompute=False),
        "dpo_trl_precomputed": trl_dpo(policy, ref, tok, rows, a.max_length, tmp,
                                       precompute=True),
    }, a.steps, a.repeats)
    del policy, ref
    orpo = ORPOTask(tok.pad_token_id, 0.1)  # the pipeline's default: NLL on the completion
    lora_model = get_peft_model(load(), LoraConfig(task_type="CAUSAL_LM", **LORA))
    res.update(interleaved({
        "orpo_lora_ours": Ours(lora_model, orpo, orpo.collate(ex, "cpu")),
        "orpo_lora_trl": trl_orpo(load, tok, rows, a.max_length, tmp),
    }, a.steps, a.repeats))
    for k, v in res.items():
        print(f"{k}_s_per_step: {v:.3f}")
    print(f"dpo_speedup_vs_trl: {res['dpo_trl'] / res['dpo_ours']:.2f}")
    print(f"dpo_speedup_vs_trl_precomputed: {res['dpo_trl_precomputed'] / res['dpo_ours']:.2f}")
    print(f"orpo_speedup_vs_trl: {res['orpo_lora_trl'] / res['orpo_lora_ours']:.2f}")


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
    p.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                   help="CPU mode: the tiny random Qwen2, or the real SmolLM2-135M-Instruct")
    p.add_argument("--steps", type=int, default=None, help="steps a repeat (tiny 10, smollm2 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pairs", type=int, default=None, help="pairs a step (tiny 8, smollm2 4)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--sft-batch", type=int, default=8)
    p.add_argument("--dpo-pairs", type=int, default=4)
    a = p.parse_args()
    if a.repeats < 5:
        p.error("--repeats must be >= 5")
    small = a.model == "tiny" or a.gpu_shape
    a.steps = a.steps or (10 if small else 1)
    a.pairs = a.pairs or (8 if small else 4)
    gpu_bench(a) if a.gpu_shape else cpu_bench(a)


if __name__ == "__main__":
    main()
