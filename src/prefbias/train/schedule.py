"""Training schedules: the optimizer steps of a cycle, the linear warm-up/decay learning rate, and
the two readings of each of stylized-dpo's schedule sentences (§4.2) as config choices.

* **Steps of a cycle** (:func:`cycle_plan`): ``epochs`` passes over the data, each a seeded batch
  order; ``grad_accum × world`` micro-batches per optimizer step; ``max_steps`` stops the cycle
  early.
* **Learning rate** (:func:`make_scheduler`): ``transformers.get_linear_schedule_with_warmup``
  with ``ceil(warmup_ratio × N)`` warm-up steps, built over ``N`` steps where ``N`` is

  - ``lr_schedule_over: max_steps`` (default): the steps actually run — with ``max_steps`` set,
    ``N = max_steps``, which is what the Hugging Face ``Trainer`` (and so TRL's DPOTrainer) does:
    ``max_steps`` overrides ``num_train_epochs`` and the scheduler is created for ``max_steps``;
  - ``lr_schedule_over: epochs``: the steps of the full ``epochs`` passes, the run stopped after
    ``max_steps`` of them (the schedule is cut while it is still warming up or high).

* **Cycles** (:func:`trained_cycles`): ``cycle_mode: chained`` (default) trains ``cycles`` cycles
  one after the other from the previous cycle's weights, each with a fresh optimizer and
  schedule; ``cycle_mode: independent`` reads "two independent training cycles" as replicate runs
  from the same initial model: the trained model is one such run (one cycle), since nothing the
  paper reports uses a second replicate.

:func:`cumulative_lr` (the sum of the learning rate over the steps that are run) compares the
readings; :func:`readings_table` computes it for a config (docs/FIDELITY.md).
"""

from __future__ import annotations

import math
from typing import Any

from prefbias.plan import merge_dpo_group

CYCLE_MODES = ("chained", "independent")
LR_SCHEDULE_OVER = ("max_steps", "epochs")


def steps_per_cycle(n_examples: int, *, batch_size: int, grad_accum: int, epochs: int,
                    world: int = 1) -> int:
    """Optimizer steps of ``epochs`` full passes (no ``max_steps``): every epoch has
    ``ceil(n / batch_size)`` micro-batches, ``grad_accum × world`` of them per step."""
    micro = epochs * math.ceil(n_examples / batch_size)
    return max(1, math.ceil(micro / (grad_accum * world)))


def cycle_plan(cfg, lengths: list[int], cycle: int, world: int) -> list[list[list[int]]]:
    """Optimizer steps of one cycle; each step is a list of micro-batches (example indices)."""
    from prefbias.train.batching import epoch_batches

    micro: list[list[int]] = []
    for epoch in range(cfg.epochs):
        micro += epoch_batches(lengths, cfg.batch_size, seed=cfg.seed * 1_000_003 + cycle * 1009
                               + epoch, group_by_length=cfg.group_by_length)
    per_step = cfg.grad_accum * world
    n_steps = max(1, math.ceil(len(micro) / per_step))
    if cfg.max_steps:
        n_steps = min(n_steps, cfg.max_steps)
    need = n_steps * per_step
    wrapped = [micro[i % len(micro)] for i in range(need)]
    return [wrapped[s * per_step:(s + 1) * per_step] for s in range(n_steps)]


def lr_schedule_over(extra: dict[str, Any] | None) -> str:
    mode = (extra or {}).get("lr_schedule_over", "max_steps")
    if mode not in LR_SCHEDULE_OVER:
        raise ValueError(f"lr_schedule_over must be one of {LR_SCHEDULE_OVER}, got {mode!r}")
    return mode


def schedule_length(n_run: int, *, mode: str, full_steps: int) -> int:
    """Steps the LR schedule is built over: the ``n_run`` steps that are run, or (``epochs``)
    the ``full_steps`` of the whole passes, of which only the first ``n_run`` are run."""
    if mode == "max_steps":
        return n_run
    if mode == "epochs":
        return max(n_run, full_steps)
    raise ValueError(f"lr_schedule_over must be one of {LR_SCHEDULE_OVER}, got {mode!r}")


def warmup_steps(warmup_ratio: float, n_sched: int) -> int:
    return int(math.ceil(warmup_ratio * n_sched))


def lr_factor(step: int, *, warmup: int, n_sched: int) -> float:
    """``get_linear_schedule_with_warmup``'s multiplier at (0-based) optimizer step ``step``."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (n_sched - step) / max(1, n_sched - warmup))


def cumulative_lr(lr: float, *, warmup_ratio: float, n_run: int, n_sched: int) -> float:
    """Sum of the learning rate over the ``n_run`` steps run of a schedule of ``n_sched`` steps."""
    warm = warmup_steps(warmup_ratio, n_sched)
    return lr * sum(lr_factor(s, warmup=warm, n_sched=n_sched) for s in range(n_run))


def make_scheduler(optimizer, cfg, n_run: int, n_examples: int, world: int):
    """The LR scheduler of one cycle of ``n_run`` optimizer steps (see the module docstring)."""
    from transformers import get_linear_schedule_with_warmup

    full = steps_per_cycle(n_examples, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                           epochs=cfg.epochs, world=world)
    n_sched = schedule_length(n_run, mode=lr_schedule_over(cfg.extra), full_steps=full)
    return get_linear_schedule_with_warmup(optimizer, warmup_steps(cfg.warmup_ratio, n_sched),
                                           n_sched)


def trained_cycles(spec: dict[str, Any]) -> int:
    """Cycles one trained model goes through: ``cycles`` when chained, 1 when independent."""
    mode = spec["cycle_mode"]
    if mode not in CYCLE_MODES:
        raise ValueError(f"cycle_mode must be one of {CYCLE_MODES}, got {mode!r}")
    cycles = int(spec["cycles"])
    return cycles if mode == "chained" else 1


def run_lr(spec: dict[str, Any], n_examples: int, *, world: int = 1,
           cycle_mode: str | None = None, lr_over: str | None = None) -> dict[str, Any]:
    """Steps and cumulative LR of one trained model under a reading of ``spec`` (a merged DPO
    group section: cycles, epochs, max_steps, batch_size, grad_accum, warmup_ratio, optimizer)."""
    spec = {**spec, **({"cycle_mode": cycle_mode} if cycle_mode else {})}
    lr = float(spec.get("optimizer", {}).get("lr", spec.get("lr")))
    full = steps_per_cycle(n_examples, batch_size=spec["batch_size"],
                           grad_accum=spec["grad_accum"], epochs=spec["epochs"],
                           world=world)
    n_run = min(full, spec["max_steps"]) if spec.get("max_steps") else full
    mode = lr_over or spec["lr_schedule_over"]
    n_sched = schedule_length(n_run, mode=mode, full_steps=full)
    cycles = trained_cycles(spec)
    per_cycle = cumulative_lr(lr, warmup_ratio=spec["warmup_ratio"], n_run=n_run,
                              n_sched=n_sched)
    warm = warmup_steps(spec["warmup_ratio"], n_sched)
    return {"cycles": cycles, "steps_per_cycle": n_run, "schedule_steps": n_sched,
            "warmup_steps": warm, "steps": cycles * n_run,
            "peak_lr": lr * max(lr_factor(s, warmup=warm, n_sched=n_sched) for s in range(n_run)),
            "cumulative_lr": cycles * per_cycle}


def readings_table(dpo: dict[str, Any], n_ultrafeedback: int, n_style: int, *,
                   world: int = 1) -> list[dict[str, Any]]:
    """Both readings of both sentences for a ``dpo`` config section (``ultrafeedback`` and
    ``styles`` sub-blocks merged over it), with the given training-set sizes."""
    uf, st = merge_dpo_group(dpo, "ultrafeedback"), merge_dpo_group(dpo, "styles")
    out = []
    for mode in CYCLE_MODES:
        out.append({"group": "ultrafeedback", "reading": f"cycle_mode: {mode}",
                    "default": mode == uf["cycle_mode"],
                    **run_lr(uf, n_ultrafeedback, world=world, cycle_mode=mode)})
    for over in LR_SCHEDULE_OVER:
        out.append({"group": "styles", "reading": f"lr_schedule_over: {over}",
                    "default": over == st["lr_schedule_over"],
                    **run_lr(st, n_style, world=world, lr_over=over)})
    return out
