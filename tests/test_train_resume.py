"""Pre-emption and checkpoint integrity on a tiny model (issue 17 items 1, 2, 3, 5).

* SIGTERM to a real ``prefbias train-sft`` process: it finishes the step, writes a checkpoint and
  exits; the rerun redoes no step and ends with the weights of an uninterrupted run.
* The metrics history comes from the checkpoint, not from the streamed file.
* Every checkpoint file is checked against its sha256; damaged or truncated files are named.
* Temporaries of killed writes are removed; a clean-up killed after the outputs were written
  does not block the rerun.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import prefbias
from prefbias.io import write_jsonl
from prefbias.train import checkpoint as ckpt
from prefbias.train import loop, recipes, synthetic
from prefbias.train.checkpoint import CheckpointError
from prefbias.train.loop import SimulatedCrash
from tests.support.sections import job_section

SFT = job_section("sft", {  # as a job receives it: schema defaults filled
    "max_prompt_tokens": 128, "max_completion_tokens": 128, "max_length": 256, "cycles": 2,
    "epochs": 1, "batch_size": 4, "grad_accum": 2, "eval_steps": 2, "warmup_ratio": 0.1,
    "max_grad_norm": 1.0, "eval_max_examples": 4, "checkpoint_steps": 2,
    "optimizer": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.95], "weight_decay": 0.01}})
# many short steps, no periodic checkpoint: without the stop handler a SIGTERM loses everything
LONG = {**SFT, "cycles": 1, "batch_size": 1, "grad_accum": 1, "eval_steps": 50,
        "checkpoint_steps": None, "max_completion_tokens": 16, "max_length": 64}
N_LONG = 300


@pytest.fixture(scope="module")
def env(tmp_path_factory, synthetic_model):
    d = tmp_path_factory.mktemp("resume")
    paths = synthetic.write_setup(d / "data")
    long_train = d / "data" / "sft" / "long.jsonl"
    write_jsonl(long_train, synthetic.sft_rows(N_LONG, 0, lo=2, hi=6))
    return {"dir": d, "model": synthetic_model(), "long_train": long_train,
            **paths}


def _out(tmp: Path, name: str = "sft-s0") -> dict[str, str]:
    return {"out": str(tmp / "models" / name), "metrics": str(tmp / "r" / name / "metrics.jsonl"),
            "summary": str(tmp / "r" / name / "summary.json"), "ckpt": str(tmp / "ckpt" / name),
            "eval_examples": str(tmp / "r" / name / "eval_examples.jsonl")}


def _sft(env, tmp, spec=SFT, train=None):
    return recipes.train_sft(model_id="sft-s0", init=str(env["model"]),
                             train=str(train or env["sft_train"]), eval=str(env["sft_test"]),
                             spec=spec, seed=0, **_out(tmp))


def _weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(Path(path) / "model.safetensors")


def _same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert set(wa) == set(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _train_steps(path) -> list[int]:
    rows = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    return [r["step"] for r in rows if r["split"] == "train"]


def _crash_at(env, tmp, monkeypatch, step: int) -> Path:
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", str(step))
    with pytest.raises(SimulatedCrash):
        _sft(env, tmp)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    return Path(_out(tmp)["ckpt"])


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """The uninterrupted SFT run (6 steps)."""
    tmp = tmp_path_factory.mktemp("ref")
    _sft(env, tmp)
    return Path(_out(tmp)["out"])


# -- item 1: SIGTERM ---------------------------------------------------------------------------
@pytest.mark.slow  # subprocess launches
def test_sigterm_mid_run_checkpoints_and_rerun_matches_uninterrupted(env, tmp_path):
    total = _sft(env, tmp_path / "a", spec=LONG, train=env["long_train"])["steps"]
    assert total > 200  # uninterrupted reference; many short steps
    o = _out(tmp_path / "b")
    cmd = [sys.executable, "-m", "prefbias.cli", "train-sft", "--model-id", "sft-s0",
           "--init", str(env["model"]), "--spec", json.dumps(LONG), "--seed", "0",
           "--out", o["out"], "--metrics", o["metrics"], "--summary", o["summary"],
           "--ckpt", o["ckpt"], "--train", str(env["long_train"]), "--eval", str(env["sft_test"])]
    penv = {k: v for k, v in os.environ.items() if not k.startswith("PREFBIAS_")}
    penv.update(PYTHONPATH=str(Path(prefbias.__file__).parents[1]),  # the code under test
                OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.Popen(cmd, env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stream = Path(o["ckpt"]) / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if stream.exists() and len(_train_steps(stream)) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    assert "stopped on SIGTERM" in err and "rerun to continue" in err
    done = _train_steps(stream)
    assert 5 <= done[-1] < total, "signalled mid-run"
    latest = (Path(o["ckpt"]) / "latest").read_text().strip()
    # the checkpoint holds every finished step: the rerun redoes none (at most one is allowed)
    assert done[-1] - int(latest.split("-")[1]) <= 1
    assert not Path(o["out"]).exists() and not Path(o["summary"]).exists()

    summ = _sft(env, tmp_path / "b", spec=LONG, train=env["long_train"])
    assert summ["steps"] == total
    assert _train_steps(o["metrics"]) == list(range(1, total + 1))
    _same_weights(o["out"], _out(tmp_path / "a")["out"])


def test_stop_signal_handlers_are_restored(env, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    _sft(env, tmp_path, spec={**SFT, "cycles": 1})
    assert signal.getsignal(signal.SIGTERM) is before


# -- item 2: metrics history -------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["emptied", "partial line", "deleted"])
def test_metrics_history_survives_resume(env, tmp_path, monkeypatch, reference, damage):
    d = _crash_at(env, tmp_path, monkeypatch, 5)  # checkpoint at 4, crash after 5
    stream = d / "metrics.jsonl"
    if damage == "emptied":
        stream.write_text("")
    elif damage == "partial line":
        stream.write_text(stream.read_text() + '{"step": 6, "epo')
    else:
        stream.unlink()
    _sft(env, tmp_path)
    o = _out(tmp_path)
    assert _train_steps(o["metrics"]) == list(range(1, 7))
    rows = [json.loads(x) for x in Path(o["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "eval"] == [2, 4, 6]
    _same_weights(o["out"], reference)


# -- item 3: checksums ---------------------------------------------------------------------------
def _flip16(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = bytes(b ^ 0xFF for b in data[mid:mid + 16])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["weights.pt", "optimizer.pt", "scheduler.pt", "rng.pt"])
def test_flipped_bytes_in_checkpoint_are_named(env, tmp_path, monkeypatch, name):
    d = _crash_at(env, tmp_path, monkeypatch, 3)
    _flip16(d / "step-2" / name)
    with pytest.raises(CheckpointError, match=rf"step-2/{name}.*checksum"):
        _sft(env, tmp_path)
    assert not Path(_out(tmp_path)["out"]).exists()


def test_truncated_state_json_is_named(env, tmp_path, monkeypatch):
    d = _crash_at(env, tmp_path, monkeypatch, 3)
    st = d / "step-2" / "state.json"
    st.write_text(st.read_text()[:20])
    with pytest.raises(CheckpointError, match=r"step-2/state\.json"):
        _sft(env, tmp_path)


def test_partial_metrics_line_in_checkpoint_is_named(env, tmp_path, monkeypatch):
    d = _crash_at(env, tmp_path, monkeypatch, 3)
    m = d / "step-2" / "metrics.jsonl"
    assert _train_steps(m) == [1, 2]  # the history is part of the checkpoint
    m.write_text(m.read_text()[:-25])
    with pytest.raises(CheckpointError, match=r"step-2/metrics\.jsonl"):
        _sft(env, tmp_path)


def _tiny_ckpt_parts():
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return model, opt, sched


def _state(step: int) -> dict:
    return {"fingerprint": "fp", "global_step": step, "cycle": 0, "step_in_cycle": step,
            "tokens": 10 * step, "slots": 12 * step, "runtime_s": 1.0}


def _save_steps(d: Path, steps, keep: int) -> None:
    model, opt, sched = _tiny_ckpt_parts()
    for s in steps:
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
        ckpt.save(d, model=model, optimizer=opt, scheduler=sched, state=_state(s), keep=keep,
                  metrics_rows=[{"step": i, "split": "train", "loss": 1.0 / i}
                                for i in range(1, s + 2)])


def test_parse_errors_are_named_even_with_matching_checksums(tmp_path):
    _save_steps(tmp_path, [1], keep=1)
    p = tmp_path / "step-1"
    assert [r["step"] for r in ckpt.read_metrics(p)] == [1]  # rows past the step are not kept
    (p / "state.json").write_text('{"global_step": 1, "fing')
    sums = json.loads((p / "checksums.json").read_text())
    sums["state.json"] = ckpt.sha256_file(p / "state.json")
    (p / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(CheckpointError, match=r"step-1/state\.json is unreadable"):
        ckpt.find_latest(tmp_path, "fp")


def test_damaged_latest_falls_back_to_previous_checkpoint(tmp_path, caplog):
    _save_steps(tmp_path, [1, 2], keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-1", "step-2"]
    assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-2"
    _flip16(tmp_path / "step-2" / "weights.pt")
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-1"
    assert "falling back" in caplog.text and "step-2/weights.pt" in caplog.text
    _flip16(tmp_path / "step-1" / "optimizer.pt")
    with pytest.raises(CheckpointError, match=r"step-2/weights\.pt.*no intact older"):
        ckpt.find_latest(tmp_path, "fp")


# -- item 5: kill-path hygiene -------------------------------------------------------------------
def test_stale_temporaries_are_removed_on_next_run(env, tmp_path, monkeypatch, reference):
    o = _out(tmp_path)
    stale_model = Path(o["out"]).parent / ".sft-s0.tmp-k1ll3d"  # killed inside save_pretrained
    stale_model.mkdir(parents=True)
    (stale_model / "model.safetensors").write_bytes(b"\0" * 4096)
    stale_summary = Path(o["summary"]).parent / ".summary.json.tmp-k1ll3d"
    stale_summary.parent.mkdir(parents=True)
    stale_summary.write_text("{")
    d = _crash_at(env, tmp_path, monkeypatch, 3)
    stale_ckpt = d / ".step-4.tmp-k1ll3d"  # killed inside a checkpoint save
    stale_ckpt.mkdir()
    (stale_ckpt / "weights.pt").write_bytes(b"\0" * 4096)
    _sft(env, tmp_path)
    assert not stale_model.exists() and not stale_summary.exists() and not stale_ckpt.exists()
    assert not any(p.name.startswith(".") for p in Path(o["out"]).parent.iterdir())
    _same_weights(o["out"], reference)


def test_kill_during_final_cleanup_does_not_block_rerun(env, tmp_path, monkeypatch, reference):
    real_rmtree = loop.shutil.rmtree
    o = _out(tmp_path)

    def killed_rmtree(path, *a, **kw):  # deletes part of the checkpoint, then the job dies
        p = Path(path)
        if p.parent != Path(o["ckpt"]).parent or "sft-s0" not in p.name:
            return real_rmtree(path, *a, **kw)  # not the clean-up of the whole checkpoint dir
        victim = next(p.rglob("optimizer.pt"))
        victim.unlink()
        raise SimulatedCrash("killed during clean-up")

    monkeypatch.setattr(loop.shutil, "rmtree", killed_rmtree)
    with pytest.raises(SimulatedCrash, match="clean-up"):
        _sft(env, tmp_path)
    monkeypatch.setattr(loop.shutil, "rmtree", real_rmtree)
    assert Path(o["summary"]).exists()  # the outputs were complete when the kill came
    summ = _sft(env, tmp_path)  # Snakemake reruns the incomplete job: it must just work
    assert summ["steps"] == 6
    _same_weights(o["out"], reference)
    ck = Path(o["ckpt"])
    assert not ck.exists() and not list(ck.parent.glob(".sft-s0.tmp-*"))


def test_slurm_profile_asks_for_a_handled_signal_ahead_of_the_wall_time():
    """The profile's sbatch extra for each training rule passes the executor plugin's check and
    names a signal the trainer handles, with lead time for a step plus a checkpoint."""
    import re
    from types import SimpleNamespace

    import yaml
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    prof = yaml.safe_load((Path(prefbias.__file__).parents[2] / "slurm" / "config.yaml")
                          .read_text())
    for rule in ("train_sft", "train_dpo", "train_orpo"):
        extra = eval(prof["set-resources"][rule]["slurm_extra"])  # noqa: S307 - as Snakemake does
        validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra=extra)))
        m = re.fullmatch(r"--signal=(?:R:)?(\w+)@(\d+)", extra)
        assert m, extra  # not B: (that would reach only the batch shell, never the trainer)
        assert getattr(signal, f"SIG{m.group(1)}") in loop.STOP_SIGNALS
        assert int(m.group(2)) >= 120


@pytest.mark.slow  # subprocess launches
def test_readme_recovery_recipe_unlocks_after_a_killed_controller(tmp_path):
    """What the README says is what Snakemake does: after the controller is killed, a rerun is
    refused (locked) until --unlock; then --rerun-incomplete redoes the cut-off job."""
    readme = (Path(prefbias.__file__).parents[2] / "README.md").read_text()
    recipe = readme[readme.index("The Snakemake controller itself was killed"):]
    assert recipe.index("--unlock") < recipe.index("--rerun-incomplete")

    (tmp_path / "Snakefile").write_text(
        'rule slow:\n    output: "out.txt"\n'
        '    shell: "echo partial > {output}; echo started > started.txt; sleep 60"\n')
    smk = [str(Path(sys.executable).with_name("snakemake")), "--cores", "1", "-d", str(tmp_path),
           "-s", str(tmp_path / "Snakefile")]
    ctl = subprocess.Popen(smk, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.time() + 120
    while not (tmp_path / "started.txt").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(ctl.pid, signal.SIGKILL)  # the controller and its job die at once
    ctl.wait()
    again = subprocess.run([*smk, "--rerun-incomplete"], capture_output=True, text=True,
                           timeout=120)  # what the profile does: refused, the lock is stale
    assert again.returncode != 0 and "--unlock" in again.stdout + again.stderr
    assert (tmp_path / "out.txt").read_text() == "partial\n"
    subprocess.run([*smk, "--unlock"], check=True, capture_output=True, timeout=120)
    (tmp_path / "Snakefile").write_text(  # (the job itself finishes quickly this time)
        'rule slow:\n    output: "out.txt"\n    shell: "echo done > {output}"\n')
    ok = subprocess.run([*smk, "--rerun-incomplete"], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "out.txt").read_text() == "done\n"


@pytest.mark.slow  # subprocess launches
def test_sigterm_to_one_ddp_rank_stops_all_ranks_at_the_same_step(env, tmp_path):
    """Two processes (torchrun, gloo on CPU): a SIGTERM to the non-main rank only still stops
    both after the same step (no rank hangs in a collective), the main rank writes the
    checkpoint, and the resumed run ends with the weights of an uninterrupted one."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    penv = {k: v for k, v in os.environ.items() if not k.startswith("PREFBIAS_")}
    penv.update(PYTHONPATH=str(Path(prefbias.__file__).parents[1]), OMP_NUM_THREADS="1")

    def launch(name: str, port: int) -> tuple[subprocess.Popen, dict[str, str]]:
        o = _out(tmp_path / name)
        cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m",
               "prefbias.cli", "train-sft", "--model-id", "sft-s0", "--init", str(env["model"]),
               "--spec", json.dumps(LONG), "--seed", "0", "--out", o["out"], "--metrics",
               o["metrics"], "--summary", o["summary"], "--ckpt", o["ckpt"], "--train",
               str(env["long_train"]), "--eval", str(env["sft_test"])]
        return subprocess.Popen(cmd, env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True), o

    port = 29400 + os.getpid() % 500
    proc, ref = launch("a", port)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    total = json.loads(Path(ref["summary"]).read_text())["steps"]
    assert json.loads(Path(ref["summary"]).read_text())["world_size"] == 2

    proc, o = launch("b", port + 1)
    stream = Path(o["ckpt"]) / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if stream.exists() and len(_train_steps(stream)) >= 5:
            break
        time.sleep(0.02)
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    by_rank = {}
    for pid in map(int, ranks.stdout.split()):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        by_rank[next(v for v in environ if v.startswith(b"RANK=")).decode()] = pid
    assert set(by_rank) == {"RANK=0", "RANK=1"} and proc.poll() is None
    os.kill(by_rank["RANK=1"], signal.SIGTERM)  # not the main process
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "stopped on SIGTERM" in err and "received by another process" in err
    done = _train_steps(stream)
    assert 5 <= done[-1] < total
    assert (Path(o["ckpt"]) / "latest").read_text().strip() == f"step-{done[-1]}"

    proc, o = launch("b", port + 2)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert _train_steps(o["metrics"]) == list(range(1, total + 1))
    _same_weights(o["out"], ref["out"])


def test_resume_from_a_checkpoint_at_a_cycle_boundary(env, tmp_path, monkeypatch, reference):
    """A checkpoint after the last step of a cycle resumes into the next cycle with a fresh
    optimizer and schedule, as the uninterrupted run does (3 steps per cycle here)."""
    spec = {**SFT, "checkpoint_steps": 3}
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "4")
    with pytest.raises(SimulatedCrash):
        _sft(env, tmp_path, spec=spec)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    st = json.loads((Path(_out(tmp_path)["ckpt"]) / "step-3" / "state.json").read_text())
    assert (st["cycle"], st["step_in_cycle"]) == (1, 0)
    _sft(env, tmp_path, spec=spec)
    _same_weights(_out(tmp_path)["out"], reference)
