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
* Metrics stream to ``<ckpt>/metrics.jsonl`` and to the run's trackers while training
  (:mod:`prefbias.train.tracking`: TensorBoard event files in ``<ckpt>/tb/<model>``, copied into
  the results when training completes; W&B / MLflow if the config asks); the rows so far are
  also part of each checkpoint (checksummed), and a resume restarts from those, never from the
  streamed file. The declared outputs (model dir, ``metrics.jsonl``,
  ``summary.json``) are written atomically only when training completes.
* Progress: tqdm's bar on a terminal; in a log file (a rule's ``2> {log}``) plain lines from
  tqdm's ``format_meter`` every ``PREFBIAS_PROGRESS_INTERVAL`` seconds (30), no carriage returns.
* Pre-emption: SIGTERM or SIGUSR1 (Slurm's time-limit/pre-emption signal; ``slurm/config.yaml``
  asks for it ahead of the wall time) lets the current optimizer step finish, writes a checkpoint
  and exits with :class:`Preempted`, so a rerun (``--rerun-incomplete``, Slurm requeue) continues
  from that step: at most the interrupted step is redone.
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
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefbias.io import (
    DataError,
    atomic_open,
    atomic_path,
    remove_stale_temporaries,
    write_json,
    write_jsonl,
)
from prefbias.train import checkpoint as ckpt
from prefbias.train.batching import Encoded, padding_stats

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    pass


class SimulatedCrash(RuntimeError):
    pass


class Preempted(SystemExit):
    """Training stopped on SIGTERM/SIGUSR1 after writing a checkpoint; a rerun continues. Exits
    the process with status 1 and the message (no traceback)."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """While active (main thread only), SIGTERM/SIGUSR1 only set a flag that the loop checks after
    each optimizer step; the previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def requested(self, acc) -> bool:
        """True on every rank if any rank got a stop signal (so all ranks stop at one step)."""
        flag = self.signum is not None
        if acc.num_processes > 1:
            t = acc.reduce(torch.tensor(float(flag), device=acc.device), reduction="sum")
            flag = float(t) > 0
        return flag

    @property
    def name(self) -> str:
        if self.signum is None:
            return "a stop signal received by another process of the run"
        return signal.Signals(self.signum).name


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
    checkpoint_keep: int = 2  # checkpoints kept on disk (a damaged newest falls back to older)
    group_by_length: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def make_optimizer(params, cfg: TrainConfig):
    opt = cfg.optimizer
    name, wd = opt["name"].lower(), float(opt["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(opt["betas"]), weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=wd)
    raise TrainingError(f"unknown optimizer.name '{name}' (adamw | rmsprop)")


class MetricsSink:
    """Metrics rows in memory (the source of truth, saved with each checkpoint) and streamed to
    ``path`` for watching; ``path`` starts as an atomic copy of ``rows`` (a resume's history).
    Each new row also goes to the run's trackers (:mod:`prefbias.train.tracking`)."""

    def __init__(self, path: Path, trackers, rows: list[dict[str, Any]]):
        self.path = path
        self._rows = list(rows)
        with atomic_open(path) as fh:
            fh.writelines(json.dumps(r) + "\n" for r in self._rows)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.trackers = trackers

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        if self.trackers is not None:
            self.trackers.log(row)

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def close(self):
        self.fh.close()
        if self.trackers is not None:
            self.trackers.finish()


@dataclass
class _Progress:
    """Where a fit stands: restored from a checkpoint on resume, saved into the next one."""
    global_step: int = 0
    tokens: int = 0
    slots: int = 0
    runtime_before: float = 0.0
    cycle: int = 0          # the next step to run: (cycle, step_in_cycle)
    step_in_cycle: int = 0
    resume_path: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, float] = field(default_factory=dict)


def cycle_plan(cfg: TrainConfig, lengths: list[int], cycle: int, world: int
               ) -> list[list[list[int]]]:
    """Optimizer steps of one cycle (:func:`prefbias.train.schedule.cycle_plan`)."""
    from prefbias.train import schedule

    return schedule.cycle_plan(cfg, lengths, cycle, world)


class Trainer:
    def __init__(self, cfg: TrainConfig, task, model, train: list[Encoded],
                 eval_set: list[Encoded], *, ckpt_dir: str | Path, fingerprint: str,
                 accelerator=None, summary_extra: dict[str, Any] | None = None,
                 init_fingerprint: str | None = None,
                 tracking: dict[str, Any] | None = None, tracking_dir: str | Path | None = None):
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
        self.init_fingerprint = init_fingerprint  # content of the initial weights
        self.summary_extra = summary_extra or {}
        self.tracking, self.tracking_dir = tracking, tracking_dir
        self.tb_dir: Path | None = None  # TensorBoard event files of this run (set by fit)
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
        """Resume (if a checkpoint exists), run the remaining optimizer steps of every cycle with
        periodic evals and checkpoints, stop cleanly on SIGTERM/SIGUSR1; return the summary."""
        cfg, acc = self.cfg, self.acc
        torch.manual_seed(cfg.seed)
        self.model = acc.prepare(self.model)
        self.model.train()
        run = self._resume()
        self._sink = None
        if acc.is_main_process:
            from prefbias.train.tracking import Trackers

            trackers = Trackers(self.tracking, model_id=cfg.model_id,
                                tb_root=self.ckpt_dir / "tb", work_dir=self.tracking_dir)
            trackers.start(resume_step=run.global_step, config=asdict(cfg))
            self.tb_dir = trackers.tb_dir
            self._sink = MetricsSink(self.ckpt_dir / "metrics.jsonl", trackers, run.rows)
        plans = [cycle_plan(cfg, self.lengths, c, acc.num_processes) for c in range(cfg.cycles)]
        self._t0 = time.time()
        progress = _progress(sum(len(p) for p in plans), run.global_step, cfg.model_id,
                             acc.is_main_process)
        crash_at = int(os.environ.get("PREFBIAS_CRASH_AT_STEP", "0") or 0)
        if cfg.eval_at_start and run.global_step == 0:
            self._eval_at_start()
        try:
            with StopSignals() as stop:
                for cycle in range(run.cycle, cfg.cycles):
                    steps = plans[cycle]
                    optimizer, scheduler = self._start_cycle(run, cycle, len(steps))
                    first = run.step_in_cycle if cycle == run.cycle else 0
                    for s in range(first, len(steps)):
                        self._train_step(run, steps[s], optimizer, scheduler, cycle, s,
                                         len(steps))
                        progress.set_postfix(loss=f"{self._last_loss:.4f}", refresh=False)
                        progress.update(1)
                        self._after_step(run, stop, optimizer, scheduler, cycle, s, len(steps))
                        if crash_at and run.global_step == crash_at:
                            raise SimulatedCrash(f"PREFBIAS_CRASH_AT_STEP={crash_at}")
        finally:
            progress.close()
            if self._sink:
                self._sink.close()
        self.metrics_rows = self._sink.rows() if self._sink else []
        return self._summary(run)

    # -- parts of fit --------------------------------------------------------------------------
    def _resume(self) -> _Progress:
        """Progress restored from the newest intact checkpoint (weights/optimizer are loaded by
        :meth:`_start_cycle`), or a fresh start. Leftovers of a killed earlier run beside the
        checkpoint directory (a clean-up interrupted after the outputs were written) go first."""
        found: list[Any] = [None, None]  # (checkpoint path, error): checked once, on rank 0
        if self.acc.is_main_process:
            for p in remove_stale_temporaries(self.ckpt_dir):
                log.info("removed %s left by an interrupted earlier run", p)
            try:
                found[0] = ckpt.find_latest(self.ckpt_dir, self.fingerprint,
                                            self.init_fingerprint)
            except ckpt.CheckpointError as e:
                found[1] = str(e)
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(found, from_process=0)
        if found[1]:
            raise ckpt.CheckpointError(found[1])
        path = found[0]
        if path is None:
            return _Progress()
        st = ckpt.read_state(path)
        log.info("resuming %s from %s (step %d)", self.cfg.model_id, path, st["global_step"])
        return _Progress(global_step=st["global_step"], tokens=st["tokens"], slots=st["slots"],
                         runtime_before=st["runtime_s"], cycle=st["cycle"],
                         step_in_cycle=st["step_in_cycle"], resume_path=path,
                         rows=ckpt.read_metrics(path))

    def _start_cycle(self, run: _Progress, cycle: int, n_steps: int):
        """A fresh optimizer and LR schedule per cycle; a resume loads the weights and RNG state,
        and the optimizer/schedule state only when it resumes inside a cycle (a checkpoint after
        a cycle's last step holds the finished cycle's optimizer, which the next cycle drops)."""
        optimizer = make_optimizer(self._params(), self.cfg)
        scheduler = self._sched(optimizer, n_steps)
        if self.acc.num_processes > 1:
            optimizer = self.acc.prepare_optimizer(optimizer)
        if run.resume_path is not None and cycle == run.cycle:
            inside = run.step_in_cycle > 0
            ckpt.load(run.resume_path, model=self.acc.unwrap_model(self.model),
                      optimizer=optimizer if inside else None,
                      scheduler=scheduler if inside else None)
        return optimizer, scheduler

    def _epoch(self, cycle: int, s: int, n_steps: int) -> float:
        return round(cycle * self.cfg.epochs + self.cfg.epochs * (s + 1) / n_steps, 4)

    def _train_step(self, run: _Progress, micro_all: list[list[int]], optimizer, scheduler,
                    cycle: int, s: int, n_steps: int) -> None:
        """One optimizer step over this rank's micro-batches (gradient accumulation), with the
        non-finite checks; logs the train row."""
        cfg, acc = self.cfg, self.acc
        world, rank = acc.num_processes, acc.process_index
        micro = micro_all[rank::world]
        loss_sum = 0.0
        for k, idx in enumerate(micro):
            exs = [self.train[i] for i in idx]
            batch = self.task.collate(exs, acc.device)
            real, slot = padding_stats(batch)
            run.tokens += real
            run.slots += slot
            sync = contextlib.nullcontext() if (k == len(micro) - 1 or world == 1) \
                else acc.no_sync(self.model)
            with sync, acc.autocast():
                loss, _ = self.task.loss(self.model, batch)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"{cfg.model_id}: non-finite loss ({loss.item()}) at step "
                        f"{run.global_step + 1} (cycle {cycle}); batch ids "
                        f"{[e.id for e in exs][:8]}")
                acc.backward(loss / len(micro))
            loss_sum += float(loss.detach()) / len(micro)
        gn = float(acc.clip_grad_norm_(self._params(), cfg.max_grad_norm or float("inf")))
        if not math.isfinite(gn):
            raise TrainingError(f"{cfg.model_id}: non-finite gradient norm at step "
                                f"{run.global_step + 1} (cycle {cycle})")
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        run.global_step += 1
        if world > 1:
            loss_sum = float(acc.reduce(torch.tensor(loss_sum, device=acc.device),
                                        reduction="mean"))
        self._last_loss, self._last_lr = loss_sum, lr
        if self._sink:
            self._sink.write({"step": run.global_step, "epoch": self._epoch(cycle, s, n_steps),
                              "split": "train", "loss": loss_sum, "lr": lr, "grad_norm": gn,
                              "cycle": cycle})

    def _after_step(self, run: _Progress, stop: StopSignals, optimizer, scheduler, cycle: int,
                    s: int, n_steps: int) -> None:
        """Eval when due (and after the last step), checkpoint when due (not after the last step:
        the outputs follow), and on a stop signal checkpoint (if not just done) and exit."""
        cfg = self.cfg
        last = s == n_steps - 1 and cycle == cfg.cycles - 1
        nxt = (cycle, s + 1) if s + 1 < n_steps else (cycle + 1, 0)
        if (cfg.eval_steps and run.global_step % cfg.eval_steps == 0) or last:
            self._eval_and_log(run, self._epoch(cycle, s, n_steps))
        due = bool(cfg.checkpoint_steps and run.global_step % cfg.checkpoint_steps == 0)
        if due and not last:
            self._checkpoint(run, optimizer, scheduler, nxt)
        if not last and stop.requested(self.acc):
            if not due:
                self._checkpoint(run, optimizer, scheduler, nxt)
            msg = (f"{cfg.model_id}: stopped on {stop.name} after step {run.global_step}; "
                   f"checkpoint written to {self.ckpt_dir}, rerun to continue from there")
            log.warning(msg)
            raise Preempted(msg)

    def _eval_at_start(self) -> None:
        """Step-0 evaluation (stylized-dpo Figure 2 starts at step 0). Evaluation draws no
        random numbers and leaves the weights alone, so training is the same with or without
        it; a resumed run skips it (its metrics already hold step 0)."""
        first = self.evaluate()
        if self._sink and first:
            self._sink.write({"step": 0, "epoch": 0.0, "split": "eval", "lr": None,
                              "grad_norm": None, **first})

    def _eval_and_log(self, run: _Progress, epoch: float) -> None:
        run.last_eval = self.evaluate()
        if self._sink and run.last_eval:
            self._sink.write({"step": run.global_step, "epoch": epoch, "split": "eval",
                              "lr": self._last_lr, "grad_norm": None, **run.last_eval})

    def _checkpoint(self, run: _Progress, optimizer, scheduler, nxt: tuple[int, int]) -> None:
        """Save weights, optimizer, scheduler, RNG, data position and metrics so far; ``nxt`` is
        the (cycle, step_in_cycle) a resume starts with."""
        acc = self.acc
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.save(self.ckpt_dir, model=acc.unwrap_model(self.model), optimizer=optimizer,
                      scheduler=scheduler, metrics_rows=self._sink.rows(),
                      keep=self.cfg.checkpoint_keep, state={
                          "fingerprint": self.fingerprint,
                          "init_fingerprint": self.init_fingerprint,
                          "global_step": run.global_step,
                          "cycle": nxt[0], "step_in_cycle": nxt[1], "tokens": run.tokens,
                          "slots": run.slots,
                          "runtime_s": run.runtime_before + time.time() - self._t0})
        acc.wait_for_everyone()

    def _summary(self, run: _Progress) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        world = acc.num_processes
        runtime = run.runtime_before + time.time() - self._t0
        last_eval = run.last_eval
        return {
            "model": cfg.model_id, "kind": cfg.kind, "steps": run.global_step,
            "runtime_s": round(runtime, 3),
            "final_eval_loss": last_eval.get("loss"),
            "final_eval_reward_accuracy": last_eval.get("reward_accuracy"),
            "final_eval": last_eval,
            "tokens_per_s": round(run.tokens * world / max(runtime, 1e-9), 2),
            "train_tokens": run.tokens * world,
            "padding_waste": round(1 - run.tokens / run.slots, 4) if run.slots else None,
            "world_size": world, "n_train": len(self.train), "n_eval": len(self.eval_set),
            "device": str(acc.device), "mixed_precision": acc.mixed_precision,
            "config": asdict(cfg), **self.summary_extra,
        }

    def unwrapped(self):
        return self.acc.unwrap_model(self.model)


class LineProgress:
    """Progress for a log file (stderr not a terminal, as in a rule's log): one plain line per
    ``interval`` seconds and at the last step, formatted by tqdm's own ``format_meter``; no
    carriage returns, so ``tail``/``less`` on the log read cleanly."""

    def __init__(self, total: int, initial: int, desc: str, interval: float, stream=None):
        self.total, self.n, self.desc, self.interval = total, initial, desc, interval
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self.start_n = initial
        self.postfix = ""
        # a first line at the start, as tqdm's bar: a resumed run shows the step it resumes at
        self.last = self.t0
        self._line(self.t0)

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if self.n >= self.total or now - self.last >= self.interval:
            self.last = now
            self._line(now)

    def set_postfix(self, refresh: bool = True, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def _line(self, now: float) -> None:
        from tqdm import tqdm

        meter = tqdm.format_meter(self.n, self.total, now - self.t0, prefix=self.desc,
                                  initial=self.start_n, ncols=0)
        self.stream.write(f"{meter} {self.postfix}".rstrip() + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def _progress(total, initial, desc, enabled, stream=None, interval: float | None = None):
    """tqdm's bar on a terminal; :class:`LineProgress` lines otherwise (a rule's log file).
    ``PREFBIAS_PROGRESS_INTERVAL`` sets the seconds between lines (default 30)."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        import io  # other ranks of a multi-process run: nothing shown

        return LineProgress(total, initial, desc, float("inf"), stream=io.StringIO())
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, file=stream, mininterval=5.0)
    if interval is None:
        interval = float(os.environ.get("PREFBIAS_PROGRESS_INTERVAL", "30") or 30)
    return LineProgress(total, initial, desc, interval, stream=stream)


def write_outputs(trainer: Trainer, summary: dict[str, Any], tokenizer, *, out_dir: str | Path,
                  metrics_path: str | Path, summary_path: str | Path, lora: bool = False,
                  eval_examples_path: str | Path | None = None,
                  tb_path: str | Path | None = None) -> None:
    """Write the declared outputs atomically (model dir first, summary last), then drop the
    checkpoints. ``tb_path``: where the run's TensorBoard event files are kept (they live beside
    the checkpoints while training and would go with them). ``eval_examples_path``: one row per
    example of the final eval (``id`` and the task's per-example columns), for bootstrap CIs of
    the validation metrics. Temporaries that a killed earlier write of these outputs left behind
    (``.<name>.tmp-*``) are removed first."""
    acc = trainer.acc
    acc.wait_for_everyone()
    if acc.is_main_process:
        for p in (out_dir, metrics_path, summary_path, eval_examples_path, tb_path):
            for stale in remove_stale_temporaries(p) if p is not None else ():
                log.info("removed %s left by an interrupted earlier write", stale)
        model = trainer.unwrapped()
        # disk full: an error naming the path and the cause (checked before the partial
        # directory is removed)
        with atomic_path(out_dir, is_dir=True) as tmp, \
                ckpt.named_write_errors(out_dir, "trained model"):
            meta = {"source": "trained", "id": summary["model"], "kind": summary["kind"]}
            if lora:
                model.save_pretrained(tmp / "adapter")
                tokenizer.save_pretrained(tmp / "adapter")
                from prefbias.train.merge import merge_lora
                # base + adapter merged and stored in fp32, evaluated in fp32 by every consumer
                # (models.load.eval_dtype): a bf16 copy would round most of the update away
                model = merge_lora(model, dtype=torch.float32).to(torch.float32)
                meta |= {"dtype": "float32", "adapter": "adapter"}
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "prefbias_model.json", meta)
        write_jsonl(metrics_path, trainer.metrics_rows)
        if tb_path is not None:
            from prefbias.train.tracking import keep_event_files

            keep_event_files(trainer.tb_dir, tb_path)
        if eval_examples_path is not None:
            ex = trainer.eval_examples
            write_jsonl(eval_examples_path, [dict(zip(ex, vals, strict=True))
                                             for vals in zip(*ex.values(), strict=True)])
        write_json(summary_path, summary)
        drop_checkpoints(trainer.ckpt_dir)
    acc.wait_for_everyone()


def drop_checkpoints(ckpt_dir: Path) -> None:
    """Remove the checkpoints of a completed run: first renamed aside in one step (so a kill
    during the slow delete never leaves a half-deleted checkpoint that a rerun would refuse),
    then deleted; a rename target left by a kill is removed by the next run (:meth:`Trainer.fit`).
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.exists():
        return
    trash = ckpt_dir.with_name(f".{ckpt_dir.name}.tmp-done-{os.getpid()}")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(ckpt_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)
