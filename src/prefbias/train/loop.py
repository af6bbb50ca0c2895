"""The one trainer behind SFT, DPO and ORPO (an ``accelerate`` loop; runs under
``accelerate launch`` for DDP).

* Schedule: ``cycles`` × (``epochs`` over the data); each cycle restarts the optimizer and the
  linear warm-up/decay schedule (``get_linear_schedule_with_warmup``) from the current weights;
  ``max_steps`` caps the optimizer steps of a cycle.
* Data order is a function of ``(seed, cycle, epoch)`` only, so a resumed run replays exactly the
  batches an uninterrupted one would; each optimizer step consumes ``grad_accum × world_size``
  micro-batches (rank r takes every world_size-th).
* bf16 autocast on GPU, fp32 on CPU. Non-finite losses or gradient norms stop the run with an
  error naming the step and the example ids.
* Metrics stream to ``<ckpt>/metrics.jsonl`` (and TensorBoard ``<ckpt>/tb`` when installed) while
  training; the declared outputs (model dir, ``metrics.jsonl``, ``summary.json``) are written
  atomically only when training completes.
* ``PREFBIAS_CRASH_AT_STEP=<n>`` raises :class:`SimulatedCrash` right after optimizer step n (and
  its checkpoint, if one is due) — used by the resume test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefbias.io import DataError, atomic_path, write_json, write_jsonl
from prefbias.train import checkpoint as ckpt
from prefbias.train.batching import Encoded, padding_stats

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    pass


class SimulatedCrash(RuntimeError):
    pass


@dataclass
class TrainConfig:
    kind: str
    model_id: str
    seed: int
    batch_size: int
    grad_accum: int
    lr: float
    optimizer: dict[str, Any]
    cycles: int = 1
    epochs: int = 1
    max_steps: int | None = None
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_steps: int | None = None
    eval_at_start: bool = False  # also evaluate before the first step (logged as step 0)
    eval_batch_size: int | None = None
    checkpoint_steps: int | None = None
    group_by_length: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def make_optimizer(params, cfg: TrainConfig):
    opt = cfg.optimizer
    name = opt.get("name", "adamw").lower()
    wd = float(opt.get("weight_decay", 0.0))
    if name == "adamw":
        betas = tuple(opt.get("betas", (0.9, 0.999)))
        return torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=wd,
                                 eps=float(opt.get("eps", 1e-8)))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=wd,
                                   alpha=float(opt.get("alpha", 0.99)),
                                   eps=float(opt.get("eps", 1e-8)))
    raise TrainingError(f"unknown optimizer.name '{name}' (adamw | rmsprop)")


class MetricsSink:
    def __init__(self, path: Path, tb_dir: Path | None, keep_up_to_step: int | None):
        self.path = path
        rows = []
        if keep_up_to_step is not None and path.exists():
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
            rows = [r for r in rows if r["step"] <= keep_up_to_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.tb = None
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(tb_dir))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "split", "epoch") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row['split']}/{k}", v, row["step"])

    def rows(self) -> list[dict[str, Any]]:
        self.fh.flush()
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x]

    def close(self):
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


def cycle_plan(cfg: TrainConfig, lengths: list[int], cycle: int, world: int
               ) -> list[list[list[int]]]:
    """Optimizer steps of one cycle (:func:`prefbias.train.schedule.cycle_plan`)."""
    from prefbias.train import schedule

    return schedule.cycle_plan(cfg, lengths, cycle, world)


class Trainer:
    def __init__(self, cfg: TrainConfig, task, model, train: list[Encoded],
                 eval_set: list[Encoded], *, ckpt_dir: str | Path, fingerprint: str,
                 accelerator=None, summary_extra: dict[str, Any] | None = None):
        from accelerate import Accelerator

        if not train:
            raise DataError("<train>", f"{cfg.model_id}: the training set is empty (no rows left "
                            "after reading and length filtering)")
        self.cfg, self.task, self.train, self.eval_set = cfg, task, train, eval_set
        cuda = torch.cuda.is_available()
        self.acc = accelerator or Accelerator(mixed_precision="bf16" if cuda else "no",
                                              cpu=not cuda)
        self.model = model
        self.ckpt_dir = Path(ckpt_dir)
        self.fingerprint = fingerprint
        self.summary_extra = summary_extra or {}
        self.lengths = [e.length for e in train]
        self.eval_examples: dict[str, list] = {"id": []}  # per example, of the latest eval

    # -- helpers -------------------------------------------------------------------------------
    def _params(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def _sched(self, optimizer, n_steps):
        from prefbias.train import schedule

        return schedule.make_scheduler(optimizer, self.cfg, n_steps, len(self.train),
                                       self.acc.num_processes)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.eval_set:
            return {}
        self.model.eval()
        bs = self.cfg.eval_batch_size or self.cfg.batch_size
        order = sorted(range(len(self.eval_set)), key=lambda i: self.eval_set[i].length)
        chunks = [order[s:s + bs] for s in range(0, len(order), bs)]
        mine = chunks[self.acc.process_index::self.acc.num_processes]
        sums: dict[str, float] = {}
        examples: dict[str, list] = {"id": []}
        for chunk in mine:
            batch = self.task.collate([self.eval_set[i] for i in chunk], self.acc.device)
            with self.acc.autocast():
                st, cols = self.task.eval_stats(self.model, batch)
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v
            examples["id"] += [self.eval_set[i].id for i in chunk]
            for k, v in cols.items():
                examples.setdefault(k, []).extend(v)
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            keys = self.task.eval_keys
            t = torch.tensor([sums.get(k, 0.0) for k in keys], device=self.acc.device)
            t = self.acc.reduce(t, reduction="sum")
            sums = dict(zip(keys, t.tolist(), strict=True))
            parts = gather_object([examples])  # one dict per process
            examples = {k: [v for part in parts for v in part.get(k, [])] for k in examples}
        self.eval_examples = examples
        self.model.train()
        return self.task.finish_eval(sums)

    # -- main loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        torch.manual_seed(cfg.seed)
        world, rank = acc.num_processes, acc.process_index
        self.model = acc.prepare(self.model)
        self.model.train()
        resume_path = ckpt.find_latest(self.ckpt_dir, self.fingerprint)
        resume_state = None
        if resume_path is not None:
            resume_state = json.loads((resume_path / "state.json").read_text(encoding="utf-8"))
            log.info("resuming %s from %s", cfg.model_id, resume_path)
        sink = MetricsSink(self.ckpt_dir / "metrics.jsonl",
                           self.ckpt_dir / "tb" if acc.is_main_process else None,
                           keep_up_to_step=resume_state["global_step"] if resume_state else -1
                           ) if acc.is_main_process else None
        crash_at = int(os.environ.get("PREFBIAS_CRASH_AT_STEP", "0") or 0)
        plans = [cycle_plan(cfg, self.lengths, c, world) for c in range(cfg.cycles)]
        total_steps = sum(len(p) for p in plans)
        global_step = 0
        tokens = slots = 0
        t0 = time.time()
        runtime_before = 0.0
        start_cycle, start_step = 0, 0
        if resume_state:
            start_cycle, start_step = resume_state["cycle"], resume_state["step_in_cycle"]
            global_step = resume_state["global_step"]
            tokens, slots = resume_state["tokens"], resume_state["slots"]
            runtime_before = resume_state["runtime_s"]
        last_eval: dict[str, float] = {}
        progress = _progress(total_steps, global_step, cfg.model_id, acc.is_main_process)
        # -- step-0 evaluation (issue 14 item 4: stylized-dpo Figure 2 starts at step 0) --------
        # Evaluation draws no random numbers and leaves the weights alone, so training is the
        # same with or without it. A resumed run skips it: its metrics already hold step 0.
        if cfg.eval_at_start and global_step == 0:
            first_eval = self.evaluate()
            if sink and first_eval:
                sink.write({"step": 0, "epoch": 0.0, "split": "eval", "lr": None,
                            "grad_norm": None, **first_eval})
        # ------------------------------------------------------------------------------------
        try:
            for cycle in range(start_cycle, cfg.cycles):
                steps = plans[cycle]
                optimizer = make_optimizer(self._params(), cfg)
                scheduler = self._sched(optimizer, len(steps))
                optimizer = acc.prepare_optimizer(optimizer) if world > 1 else optimizer
                first = 0
                if resume_state and cycle == start_cycle:
                    ckpt.load(resume_path, model=acc.unwrap_model(self.model),
                              optimizer=optimizer, scheduler=scheduler)
                    first = start_step
                for s in range(first, len(steps)):
                    micro = steps[s][rank::world]
                    loss_sum = 0.0
                    for k, idx in enumerate(micro):
                        exs = [self.train[i] for i in idx]
                        batch = self.task.collate(exs, acc.device)
                        real, slot = padding_stats(batch)
                        tokens += real
                        slots += slot
                        sync = contextlib.nullcontext() if (k == len(micro) - 1 or world == 1) \
                            else acc.no_sync(self.model)
                        with sync, acc.autocast():
                            loss, _ = self.task.loss(self.model, batch)
                            if not torch.isfinite(loss):
                                raise TrainingError(
                                    f"{cfg.model_id}: non-finite loss ({loss.item()}) at step "
                                    f"{global_step + 1} (cycle {cycle}); batch ids "
                                    f"{[e.id for e in exs][:8]}")
                            acc.backward(loss / len(micro))
                        loss_sum += float(loss.detach()) / len(micro)
                    gn = acc.clip_grad_norm_(self._params(), cfg.max_grad_norm or float("inf"))
                    gn = float(gn)
                    if not math.isfinite(gn):
                        raise TrainingError(f"{cfg.model_id}: non-finite gradient norm at step "
                                            f"{global_step + 1} (cycle {cycle})")
                    lr = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    global_step += 1
                    epoch = cycle * cfg.epochs + cfg.epochs * (s + 1) / len(steps)
                    if world > 1:
                        loss_sum = float(acc.reduce(torch.tensor(loss_sum, device=acc.device),
                                                    reduction="mean"))
                    if sink:
                        sink.write({"step": global_step, "epoch": round(epoch, 4),
                                    "split": "train", "loss": loss_sum, "lr": lr,
                                    "grad_norm": gn, "cycle": cycle})
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss_sum:.4f}")
                    last = s == len(steps) - 1 and cycle == cfg.cycles - 1
                    if (cfg.eval_steps and global_step % cfg.eval_steps == 0) or last:
                        last_eval = self.evaluate()
                        if sink and last_eval:
                            sink.write({"step": global_step, "epoch": round(epoch, 4),
                                        "split": "eval", "lr": lr, "grad_norm": None,
                                        **last_eval})
                    if cfg.checkpoint_steps and global_step % cfg.checkpoint_steps == 0 \
                            and not last:
                        acc.wait_for_everyone()
                        if acc.is_main_process:
                            nxt = (cycle, s + 1) if s + 1 < len(steps) else (cycle + 1, 0)
                            ckpt.save(self.ckpt_dir, model=acc.unwrap_model(self.model),
                                      optimizer=optimizer, scheduler=scheduler, state={
                                          "fingerprint": self.fingerprint,
                                          "global_step": global_step, "cycle": nxt[0],
                                          "step_in_cycle": nxt[1], "tokens": tokens,
                                          "slots": slots,
                                          "runtime_s": runtime_before + time.time() - t0})
                        acc.wait_for_everyone()
                    if crash_at and global_step == crash_at:
                        raise SimulatedCrash(f"PREFBIAS_CRASH_AT_STEP={crash_at}")
        finally:
            progress.close()
        runtime = runtime_before + time.time() - t0
        rows = sink.rows() if sink else []
        if sink:
            sink.close()
        summary = {
            "model": cfg.model_id, "kind": cfg.kind, "steps": global_step,
            "runtime_s": round(runtime, 3),
            "final_eval_loss": last_eval.get("loss"),
            "final_eval_reward_accuracy": last_eval.get("reward_accuracy"),
            "final_eval": last_eval,
            "tokens_per_s": round(tokens * world / max(runtime, 1e-9), 2),
            "train_tokens": tokens * world,
            "padding_waste": round(1 - tokens / slots, 4) if slots else None,
            "world_size": world, "n_train": len(self.train), "n_eval": len(self.eval_set),
            "device": str(acc.device), "mixed_precision": acc.mixed_precision,
            "config": asdict(cfg), **self.summary_extra,
        }
        self.metrics_rows = rows
        return summary

    def unwrapped(self):
        return self.acc.unwrap_model(self.model)


def _progress(total, initial, desc, enabled):
    try:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr,
                    disable=not enabled, mininterval=5.0)
    except ImportError:  # pragma: no cover
        class _N:
            def update(self, *_):
                pass

            def set_postfix(self, **_):
                pass

            def close(self):
                pass
        return _N()


def write_outputs(trainer: Trainer, summary: dict[str, Any], tokenizer, *, out_dir: str | Path,
                  metrics_path: str | Path, summary_path: str | Path, lora: bool = False,
                  eval_examples_path: str | Path | None = None) -> None:
    """Write the declared outputs atomically (model dir first, summary last), then drop the
    checkpoints. ``eval_examples_path``: one row per example of the final eval (``id`` and the
    task's per-example columns), for bootstrap CIs of the validation metrics."""
    acc = trainer.acc
    acc.wait_for_everyone()
    if acc.is_main_process:
        model = trainer.unwrapped()
        with atomic_path(out_dir, is_dir=True) as tmp:
            if lora:
                model.save_pretrained(tmp / "adapter")
                tokenizer.save_pretrained(tmp / "adapter")
                from prefbias.train.merge import merge_lora
                model = merge_lora(model)  # fp32 merge, cast back (train/merge.py)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "prefbias_model.json", {"source": "trained", "id": summary["model"],
                                                     "kind": summary["kind"]})
        write_jsonl(metrics_path, trainer.metrics_rows)
        if eval_examples_path is not None:
            ex = trainer.eval_examples
            write_jsonl(eval_examples_path, [dict(zip(ex, vals, strict=True))
                                             for vals in zip(*ex.values(), strict=True)])
        write_json(summary_path, summary)
        shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)
    acc.wait_for_everyone()
