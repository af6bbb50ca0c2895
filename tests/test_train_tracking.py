"""Training curves that survive (prefbias.train.tracking): the real TensorBoard (and, when
installed, W&B offline and an MLflow file store) on a tiny SFT run of a few steps; readable
progress lines in a log file."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from prefbias.train import loop, recipes, synthetic
from prefbias.train.loop import SimulatedCrash
from tests.support.sections import job_section

SFT = job_section("sft", {  # as a job receives it: schema defaults filled
    "max_prompt_tokens": 128, "max_completion_tokens": 128, "max_length": 256, "cycles": 1,
    "epochs": 1, "batch_size": 4, "grad_accum": 1, "eval_steps": 2, "warmup_ratio": 0.1,
    "max_grad_norm": 1.0, "eval_max_examples": 4, "checkpoint_steps": 2, "max_steps": 5,
    "optimizer": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.95], "weight_decay": 0.01}})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    return {"model": synthetic.build_model(d / "base"), **synthetic.write_setup(d / "data")}


def _run(env, tmp: Path, tracking=None, name="sft-s0"):
    return recipes.train_sft(
        model_id=name, init=str(env["model"]), train=str(env["sft_train"]),
        eval=str(env["sft_test"]), spec=SFT, seed=0, out=str(tmp / "models" / name),
        metrics=str(tmp / "r" / name / "metrics.jsonl"),
        summary=str(tmp / "r" / name / "summary.json"), ckpt=str(tmp / "ckpt" / name),
        eval_examples=str(tmp / "r" / name / "eval_examples.jsonl"),
        tb=str(tmp / "r" / name / "tb"), tracking=tracking, tracking_dir=str(tmp / "tracking"))


def _scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files under ``tb_dir``, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for run_dir in sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def _metrics(tmp: Path, split: str, key: str, name="sft-s0") -> list[tuple[int, float]]:
    rows = [json.loads(x) for x in (tmp / "r" / name / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in rows if r["split"] == split]


def test_event_files_are_kept_in_results_and_match_metrics(env, tmp_path):
    _run(env, tmp_path)
    tb = tmp_path / "r" / "sft-s0" / "tb"
    assert list(tb.rglob("events.out.tfevents.*")), "event files must survive the checkpoints"
    assert not (tmp_path / "ckpt" / "sft-s0").exists()  # checkpoints (and live tb) dropped
    sc = _scalars(tb)
    got = sorted(sc["train/loss"])
    want = _metrics(tmp_path, "train", "loss")
    assert [s for s, _ in got] == [s for s, _ in want] == [1, 2, 3, 4, 5]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)
    assert sorted(s for s, _ in sc["eval/loss"]) == [s for s, _ in _metrics(tmp_path, "eval",
                                                                              "loss")]
    assert {"train/lr", "train/grad_norm"} <= set(sc)
    assert "train/cycle" not in sc and "eval/lr" not in sc


def test_resumed_run_has_one_point_per_step(env, tmp_path, monkeypatch):
    """A crash after step 3 (checkpoint at 2): the rerun's curve has each step once (the
    events the crashed run wrote for step 3 are purged) and equals metrics.jsonl."""
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "3")
    with pytest.raises(SimulatedCrash):
        _run(env, tmp_path)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    _run(env, tmp_path)
    got = sorted(_scalars(tmp_path / "r" / "sft-s0" / "tb")["train/loss"])
    want = _metrics(tmp_path, "train", "loss")
    assert [s for s, _ in got] == [1, 2, 3, 4, 5]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)


def test_unknown_tracker_is_refused(env, tmp_path):
    from prefbias.train.tracking import TrackingError

    with pytest.raises(TrackingError, match="unknown tracker 'neptune'"):
        _run(env, tmp_path, tracking={"report_to": ["tensorboard", "neptune"]})


@pytest.mark.parametrize("library", ["wandb", "mlflow"])
def test_a_missing_tracker_library_says_how_to_install_it(tmp_path, monkeypatch, library):
    from prefbias.train.tracking import Trackers, TrackingError

    monkeypatch.setitem(sys.modules, library, None)  # `import library` raises ImportError
    trackers = Trackers({"report_to": [library]}, model_id="sft-s0", tb_root=tmp_path / "tb")
    with pytest.raises(TrackingError, match=rf"lists {library}, which is not installed "
                                            rf"\(pip install {library}\)"):
        trackers.start(resume_step=0, config={})


# The real trackers, never skipped: `make test` installs the `tracking` extra (envs/constraints.txt)
def test_wandb_offline(env, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    _run(env, tmp_path, tracking={"report_to": ["tensorboard", "wandb"]})
    runs = list((tmp_path / "tracking" / "wandb").rglob("offline-run-*"))
    assert runs, "wandb offline run directory expected"
    assert list(runs[0].rglob("*.wandb"))


def test_mlflow_local_store(env, tmp_path):
    import alembic  # noqa: F401 - MLflow's SQLite store
    import mlflow

    _run(env, tmp_path, tracking={"report_to": ["mlflow"]})
    db = (tmp_path / "tracking" / "mlflow.db").resolve()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("prefbias")
    (run,) = client.search_runs([exp.experiment_id])
    hist = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4, 5]


def test_progress_in_a_log_file_is_plain_lines():
    buf = io.StringIO()  # not a terminal, as a rule's `2> {log}`
    p = loop._progress(4, 0, "sft-s0", True, stream=buf, interval=0)
    for step in range(4):
        p.set_postfix(loss=f"{1.0 / (step + 1):.4f}", refresh=False)
        p.update(1)
    p.close()
    text = buf.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 5 and " 0/4 " in lines[0]  # the start (a resumed run: its step), then each
    assert lines[-1].startswith("sft-s0: 100%") and "4/4" in lines[-1]
    assert lines[-1].endswith("loss=0.2500")


def test_progress_lines_are_spaced_by_the_interval():
    buf = io.StringIO()
    p = loop._progress(100, 0, "m", True, stream=buf, interval=3600)
    for _ in range(100):
        p.update(1)
    # the start and the last step; nothing in between within the hour
    assert len(buf.getvalue().splitlines()) == 2


def test_library_progress_bars_are_off_in_a_log_file(tmp_path):
    """tqdm bars of the libraries (transformers' "Loading weights", huggingface_hub, datasets)
    are switched off when stderr is a file, before tqdm is imported."""
    import subprocess
    import sys

    code = ("from prefbias import cli\n"
            "assert cli.quiet_progress_bars()\n"
            "import tqdm\n"
            "for _ in tqdm.tqdm(range(3), desc='Loading weights'): pass\n")
    log = tmp_path / "rule.log"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-c", code], stderr=fh, check=True,
                       env={k: v for k, v in __import__("os").environ.items()
                            if not k.startswith("TQDM_")})
    assert "Loading weights" not in log.read_text() and "\r" not in log.read_text()
