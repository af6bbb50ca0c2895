"""stylized-dpo Figure 2 shows curves (issue 14 item 4): the style DPO runs evaluate at step 0
and every ``dpo.styles.eval_steps``; the figure has integer step ticks and names each set's
accuracy at the first evaluation after step 0 (the paper's start-of-training difference)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from prefbias.plan import dpo_group_spec
from prefbias.report import figures
from prefbias.train import recipes, refs, synthetic
from prefbias.train.loop import SimulatedCrash
from tests.support.sections import job_section

DPO = job_section("dpo", {  # as a job receives it: schema defaults filled
    "batch_size": 2, "grad_accum": 2, "max_length": 128, "eval_steps": 2, "warmup_ratio": 0.1,
    "cycles": 1, "epochs": 1, "max_steps": 4, "beta": 0.1, "max_grad_norm": 1.0,
    "eval_max_examples": 4, "checkpoint_steps": 2,
    "optimizer": {"name": "rmsprop", "lr": 1e-3, "weight_decay": 0.01}}, group="styles")


def eval_points(spec: dict) -> list[int]:
    """The steps a run of ``spec`` evaluates at (the loop's rule, worked out independently)."""
    n = spec["max_steps"]
    pts = {s for s in range(1, n + 1) if s % spec["eval_steps"] == 0} | {n}
    return sorted(pts | ({0} if spec.get("eval_at_start") else set()))


def test_config_schedules(paper_config, tiny_config):
    paper = dpo_group_spec(paper_config, "styles")
    assert eval_points(paper) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # 1 + 10
    assert len(eval_points(dpo_group_spec(tiny_config, "styles"))) >= 3
    # UltraFeedback keeps the paper's schedule (Table 2: eval_steps 100, no step 0)
    assert dpo_group_spec(paper_config, "ultrafeedback")["eval_steps"] == 100
    assert not dpo_group_spec(paper_config, "ultrafeedback").get("eval_at_start")


@pytest.fixture(scope="module")
def env(tmp_path_factory, synthetic_model):
    d = tmp_path_factory.mktemp("fig2")
    setup = synthetic.write_setup(d / "data")
    model = synthetic_model()
    rt = d / "refs" / "train.pt"
    refs.compute(model, setup["prefs_train"], rt, max_length=128)
    return {"dir": d, "model": model, "train": setup["prefs_train"], "refs": rt}


def _train(env, tmp: Path, name: str, spec: dict) -> tuple[dict, list[dict], Path]:
    out = {"out": str(tmp / "models" / name), "metrics": str(tmp / "r" / name / "metrics.jsonl"),
           "summary": str(tmp / "r" / name / "summary.json"), "ckpt": str(tmp / "ckpt" / name),
           "eval_examples": str(tmp / "r" / name / "eval_examples.jsonl")}
    summ = recipes.train_dpo(model_id=name, init=str(env["model"]), train=str(env["train"]),
                             train_refs=str(env["refs"]), eval=None, eval_refs=None, spec=spec,
                             seed=0, **out)
    rows = [json.loads(x) for x in Path(out["metrics"]).read_text().splitlines()]
    return summ, rows, Path(out["out"])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_step0_eval_curve_and_unchanged_training(env, tmp_path):
    spec = {**DPO, "eval_steps": 1, "eval_at_start": True}
    summ, rows, out = _train(env, tmp_path, "with", spec)
    ev = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in ev] == eval_points(spec) == [0, 1, 2, 3, 4]
    # step 0: policy == reference, so every margin is 0 (up to rounding) and the loss is ln 2
    assert ev[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert ev[0]["reward_margin"] == pytest.approx(0.0, abs=1e-3)
    assert ev[0]["epoch"] == 0.0 and ev[0]["lr"] is None
    # evaluating never changes training: same weights and train losses as the old schedule
    summ2, rows2, out2 = _train(env, tmp_path, "without", DPO)
    assert [r["step"] for r in rows2 if r["split"] == "eval"] == [2, 4]
    assert [r["loss"] for r in rows if r["split"] == "train"] == \
        [r["loss"] for r in rows2 if r["split"] == "train"]
    w, w2 = _weights(out), _weights(out2)
    assert all(torch.equal(w[k], w2[k]) for k in w)
    assert summ["final_eval_loss"] == pytest.approx(summ2["final_eval_loss"])


def test_resume_keeps_one_step0_row(env, tmp_path, monkeypatch):
    spec = {**DPO, "eval_steps": 1, "eval_at_start": True}
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "3")  # after the step-2 checkpoint
    with pytest.raises(SimulatedCrash):
        _train(env, tmp_path, "crash", spec)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    _, rows, _ = _train(env, tmp_path, "crash", spec)
    assert [r["step"] for r in rows if r["split"] == "eval"] == [0, 1, 2, 3, 4]


def _metrics(R: Path, model: str, acc: list[float], steps: list[int],
             lrs: list[float] | None = None) -> None:
    p = R / "train" / model / "metrics.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"step": s, "split": "train", "loss": 0.7, "lr": lr}
            for s, lr in enumerate(lrs or [], start=1)]
    rows += [{"step": s, "split": "eval", "loss": 0.6931 - 0.004 * s, "reward_accuracy": a}
             for s, a in zip(steps, acc, strict=True)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_figure2_ticks_and_start_of_training(tmp_path):
    steps = [0, 1, 2, 3, 4]  # a tiny run: 5 points, matplotlib would tick at 0.5 steps
    _metrics(tmp_path, "dpo-authoritative-s0", [0.5, 0.85, 0.86, 0.9, 0.9], steps)
    _metrics(tmp_path, "dpo-sycophantic-s0", [0.375, 0.55, 0.7, 0.76, 0.8], steps)
    rows = [{"id": "dpo-authoritative-s0", "label": "Ultrafeedback authoritative", "seed": 0},
            {"id": "dpo-sycophantic-s0", "label": "Ultrafeedback sycophantic", "seed": 0}]
    fig = figures.figure2_axes(tmp_path, rows)
    loss_ax, acc_ax = fig.axes[:2]
    for ax in (loss_ax, acc_ax):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.lines[0].get_xdata()[0] == 0  # curves start at step 0
    # the legend names each set's accuracy at step 1, the first evaluation after step 0
    legend = acc_ax.get_legend()
    assert legend.get_title().get_text() == "Preference set (acc. at step 1)"
    assert [t.get_text() for t in legend.get_texts()] == ["authoritative (0.85)",
                                                           "sycophantic (0.55)"]
    assert acc_ax.get_ylim() == pytest.approx((-0.02, 1.02))
    plt.close(fig)
    assert figures.first_eval_after_start([]) is None
    paths = figures.figure2(tmp_path, rows, tmp_path / "fig" / "stylized_figure2")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_start_of_training_skips_warmup_steps_without_update(tmp_path):
    """A linear warm-up gives step 1 lr = 0: after it the policy is still the reference, so the
    start-of-training accuracy is read at step 2, the first evaluation after a weight update."""
    steps = [0, 1, 2, 3, 4]
    lrs = [0.0, 5e-4, 1e-3, 5e-4]  # train rows of steps 1..4
    _metrics(tmp_path, "dpo-authoritative-s0", [0.5, 0.5, 0.875, 0.875, 1.0], steps, lrs)
    _metrics(tmp_path, "dpo-persuasive-s0", [0.25, 0.25, 0.625, 0.75, 0.75], steps, lrs)
    rows = [{"id": "dpo-authoritative-s0", "label": "Ultrafeedback authoritative", "seed": 0},
            {"id": "dpo-persuasive-s0", "label": "Ultrafeedback persuasive", "seed": 0}]
    assert figures.first_update_step(tmp_path, "dpo-authoritative-s0") == 2
    fig = figures.figure2_axes(tmp_path, rows)
    legend = fig.axes[1].get_legend()
    assert legend.get_title().get_text() == "Preference set (acc. at step 2)"
    assert [t.get_text() for t in legend.get_texts()] == ["authoritative (0.88)",
                                                           "persuasive (0.62)"]
    plt.close(fig)
    # no update at all (every lr 0): no start-of-training point to name
    _metrics(tmp_path, "dpo-x-s0", [0.5, 0.5], [0, 1], [0.0])
    assert figures.first_update_step(tmp_path, "dpo-x-s0") == 2
    assert figures.first_eval_after_start([pd.DataFrame(index=[0, 1])], 2) is None
