"""stylized-dpo §4.2's schedule sentences as config choices: hand-computed steps, warm-up, learning
rate per step and cumulative learning rate; the trainer's real scheduler follows the reading."""

from __future__ import annotations

import pytest
import torch

from prefbias.config import ConfigError, load_config, validate_config
from prefbias.train import schedule
from prefbias.train.loop import TrainConfig, cycle_plan

STYLE = {"cycles": 1, "epochs": 1, "max_steps": 4, "batch_size": 2, "grad_accum": 1,
         "warmup_ratio": 0.1, "optimizer": {"name": "rmsprop", "lr": 1.0},
         "cycle_mode": "chained", "lr_schedule_over": "max_steps"}


def _cfg(**kw) -> TrainConfig:
    base = dict(kind="dpo", model_id="m", seed=0, batch_size=2, grad_accum=1, lr=1.0,
                optimizer={"name": "rmsprop", "lr": 1.0}, epochs=1, max_steps=4,
                warmup_ratio=0.1)
    return TrainConfig(**{**base, **kw})


def _lrs(cfg: TrainConfig, n_examples: int) -> list[float]:
    """The learning rates the real scheduler (transformers) gives at each step of one cycle."""
    plan = cycle_plan(cfg, [5] * n_examples, 0, 1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = schedule.make_scheduler(opt, cfg, len(plan), n_examples, 1)
    out = []
    for _ in plan:
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_limited_to_100_steps_two_readings_by_hand():
    """24 rows, batch 2 -> 12 steps in the epoch, run stopped at 4.
    max_steps reading: schedule over 4 steps, warm-up ceil(0.4) = 1 -> 0, 1, 2/3, 1/3 (sum 2).
    epochs reading: schedule over 12, warm-up ceil(1.2) = 2 -> 0, 1/2, 1, 9/10 (sum 2.4)."""
    over_steps = _lrs(_cfg(extra={"lr_schedule_over": "max_steps"}), 24)
    assert over_steps == pytest.approx([0.0, 1.0, 2 / 3, 1 / 3])
    over_epoch = _lrs(_cfg(extra={"lr_schedule_over": "epochs"}), 24)
    assert over_epoch == pytest.approx([0.0, 0.5, 1.0, 0.9])
    assert _lrs(_cfg(extra={}), 24) == pytest.approx(over_steps)  # the default
    assert schedule.run_lr(STYLE, 24)["cumulative_lr"] == pytest.approx(2.0)
    assert schedule.run_lr(STYLE, 24, lr_over="epochs")["cumulative_lr"] == pytest.approx(2.4)


def test_paper_scale_variant_readings():
    """1,911 steps per epoch (61,135 rows / 32 per step): over 100 steps the LR warms up for 10
    steps and decays to 0 (Σ = 0+.1+…+.9 + (90+89+…+1)/90 = 4.5 + 45.5 = 50 lr); over the epoch
    it is still warming up at step 100 (warm-up 192 steps: Σ = (0+…+99)/192 = 4950/192 lr)."""
    spec = {**STYLE, "max_steps": 100, "batch_size": 4, "grad_accum": 8}
    a = schedule.run_lr(spec, 61_135)
    b = schedule.run_lr(spec, 61_135, lr_over="epochs")
    assert (a["schedule_steps"], a["warmup_steps"], a["steps"]) == (100, 10, 100)
    assert a["cumulative_lr"] == pytest.approx(50.0)
    assert (b["schedule_steps"], b["warmup_steps"], b["steps"]) == (1911, 192, 100)
    assert b["cumulative_lr"] == pytest.approx(4950 / 192)
    assert b["peak_lr"] == pytest.approx(99 / 192)


def test_two_cycles_chained_or_independent():
    """Chained: the model goes through 2 cycles of 2 epochs (twice the steps and the cumulative
    LR of one); independent: one replicate run of 2 epochs is the model."""
    uf = {"cycles": 2, "epochs": 2, "max_steps": None, "batch_size": 2, "grad_accum": 1,
          "warmup_ratio": 0.1, "optimizer": {"lr": 1.0}, "cycle_mode": "chained",
          "lr_schedule_over": "max_steps"}
    assert schedule.trained_cycles(uf) == 2
    assert schedule.trained_cycles({**uf, "cycle_mode": "independent"}) == 1
    # 24 rows: 12 steps per epoch, 24 per cycle; warm-up 3: Σ = (0+1+2)/3 + (21+20+…+1)/21 = 12
    one = schedule.run_lr(uf, 24, cycle_mode="independent")
    two = schedule.run_lr(uf, 24)
    assert (one["steps"], two["steps"]) == (24, 48)
    assert one["cumulative_lr"] == pytest.approx(12.0)
    assert two["cumulative_lr"] == pytest.approx(24.0)
    with pytest.raises(ValueError, match="cycle_mode"):
        schedule.trained_cycles({**uf, "cycle_mode": "both"})


def test_cycle_plan_is_unchanged_by_the_move():
    """The plan is the old loop.cycle_plan's: 2 epochs of 5 rows / batch 2 = 6 micro-batches,
    2 per step -> 3 steps; max_steps caps them."""
    cfg = _cfg(epochs=2, max_steps=None, grad_accum=2)
    plan = cycle_plan(cfg, [3, 4, 5, 6, 7], 0, 1)
    assert [len(s) for s in plan] == [2, 2, 2]
    micro = [b for step in plan for b in step]
    assert sorted(i for b in micro[:3] for i in b) == [0, 1, 2, 3, 4]  # epoch 0: every row once
    assert sorted(i for b in micro[3:] for i in b) == [0, 1, 2, 3, 4]  # epoch 1
    assert len(cycle_plan(_cfg(epochs=2, max_steps=2, grad_accum=2), [3] * 5, 0, 1)) == 2


def test_readings_table_of_the_paper_config():
    cfg = load_config("config.yaml")
    rows = schedule.readings_table(cfg["dpo"], 61_135, 61_135)
    by = {(r["group"], r["reading"]): r for r in rows}
    assert by[("ultrafeedback", "cycle_mode: chained")]["default"]
    assert by[("styles", "lr_schedule_over: max_steps")]["default"]
    # 2 epochs = 2 × 15,284 micro-batches of 4 = 30,568 / 8 per step = 3,821 steps per cycle
    assert by[("ultrafeedback", "cycle_mode: chained")]["steps"] == 2 * 3821
    assert by[("ultrafeedback", "cycle_mode: independent")]["steps"] == 3821


@pytest.mark.parametrize("group, key, bad", [("ultrafeedback", "cycle_mode", "replicates"),
                                             ("styles", "lr_schedule_over", "epoch")])
def test_schema_rejects_unknown_readings(group, key, bad):
    cfg = load_config("config.yaml")
    cfg["dpo"][group][key] = bad
    with pytest.raises(ConfigError, match=key):
        validate_config(cfg)
