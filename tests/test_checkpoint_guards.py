"""issue 23 items 2, 9 and 10 (disk full): a checkpoint is never resumed on other initial weights;
a missing or empty ``latest`` pointer falls back to intact step directories instead of restarting
at step 0; ``checkpoint_keep`` is configurable (default 2); a full disk is named."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from prefbias.train import checkpoint as ckpt
from prefbias.train import recipes, synthetic
from prefbias.train.checkpoint import CheckpointError
from prefbias.train.loop import SimulatedCrash, write_outputs
from tests.support.sections import job_section

SFT = job_section("sft", {  # as a job receives it: schema defaults filled
    "max_prompt_tokens": 64, "max_completion_tokens": 64, "max_length": 128, "cycles": 1,
    "epochs": 1, "batch_size": 4, "grad_accum": 1, "eval_steps": 50, "warmup_ratio": 0.0,
    "max_grad_norm": 1.0, "eval_max_examples": 2, "checkpoint_steps": 2,
    "optimizer": {"name": "adamw", "lr": 1e-3}})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("guards")
    return synthetic.write_setup(d / "data", n_sft=24)


def _sft(data, tmp: Path, init: Path, spec=SFT) -> dict:
    return recipes.train_sft(model_id="sft-s0", init=str(init), train=str(data["sft_train"]),
                             eval=str(data["sft_test"]), spec=spec, seed=0,
                             out=str(tmp / "out"), metrics=str(tmp / "m.jsonl"),
                             summary=str(tmp / "s.json"), ckpt=str(tmp / "ckpt"))


def _crash(data, tmp, init, monkeypatch, step: int, spec=SFT) -> Path:
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", str(step))
    with pytest.raises(SimulatedCrash):
        _sft(data, tmp, init, spec)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    return tmp / "ckpt"


# -- item 2: other base weights, same shapes ------------------------------------------------------
def test_resume_on_other_weights_of_the_same_shapes_is_refused(data, tmp_path, monkeypatch):
    init = synthetic.build_model(tmp_path / "base", seed=1)
    before = ckpt.model_fingerprint(init)
    d = _crash(data, tmp_path, init, monkeypatch, 4)
    assert json.loads((d / "step-4" / "state.json").read_text())["init_fingerprint"] == before
    synthetic.build_model(tmp_path / "base", seed=2)  # a new tiny seed: same files, same sizes
    after = ckpt.model_fingerprint(init)
    assert after != before
    with pytest.raises(CheckpointError, match="other initial weights") as err:
        _sft(data, tmp_path, init)
    assert before in str(err.value) and after in str(err.value)
    assert not (tmp_path / "out").exists()


def test_model_fingerprint_reads_content_not_sizes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    a = ckpt.model_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x01" * 64)
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert ckpt.model_fingerprint(tmp_path) != a


# -- item 9: the latest pointer and keep ---------------------------------------------------------
def _parts():
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _save(d: Path, steps, keep: int = 2) -> None:
    model, opt, sched = _parts()
    for s in steps:
        ckpt.save(d, model=model, optimizer=opt, scheduler=sched, keep=keep,
                  state={"fingerprint": "fp", "global_step": s, "cycle": 0, "step_in_cycle": s,
                         "tokens": s, "slots": s, "runtime_s": 1.0},
                  metrics_rows=[{"step": s, "split": "train", "loss": 1.0}])


def test_missing_latest_resumes_from_the_newest_intact_step(tmp_path, caplog):
    _save(tmp_path, [1, 2])
    (tmp_path / "latest").unlink()
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-2"
    assert "latest is missing" in caplog.text and "step 0" in caplog.text


@pytest.mark.parametrize("content", ["", "\n", "garbage\n", "../step-2\n", b"\xff\xfe"])
def test_empty_or_bad_latest_falls_back_to_intact_steps(tmp_path, caplog, content):
    _save(tmp_path, [1, 2])
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(tmp_path / "latest", mode) as fh:
        fh.write(content)
    with caplog.at_level(logging.WARNING):
        assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-2"
    assert "falling back" in caplog.text


def test_missing_latest_with_a_damaged_newest_step_falls_back_further(tmp_path):
    _save(tmp_path, [1, 2])
    (tmp_path / "latest").unlink()
    (tmp_path / "step-2" / "weights.pt").write_bytes(b"damaged")
    assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-1"


def test_nothing_at_all_is_a_fresh_start(tmp_path):
    assert ckpt.find_latest(tmp_path, "fp") is None
    (tmp_path / "latest").write_text("")
    assert ckpt.find_latest(tmp_path, "fp") is None


def test_checkpoint_keep_is_configured_and_defaults_to_two(data, tmp_path, monkeypatch,
                                                          tiny_config):
    for section in ("sft", "dpo", "orpo"):
        assert tiny_config[section]["checkpoint_keep"] == 2  # the schema's default, filled
    init = synthetic.build_model(tmp_path / "base", seed=1)
    d = _crash(data, tmp_path / "a", init, monkeypatch, 5)  # checkpoints at steps 2 and 4
    assert sorted(p.name for p in d.glob("step-*")) == ["step-2", "step-4"]
    d = _crash(data, tmp_path / "b", init, monkeypatch, 5, {**SFT, "checkpoint_keep": 1})
    assert sorted(p.name for p in d.glob("step-*")) == ["step-4"]
    # keep changes no result: a resume with another keep is accepted
    summ = _sft(data, tmp_path / "b", init, {**SFT, "checkpoint_keep": 3})
    assert summ["steps"] == 6


# -- item 10: disk full ----------------------------------------------------------------------------
def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _iostream(*a, **k):
    raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0: "
                       "iostream error")


@pytest.mark.parametrize("failure", ["oserror", "torch_iostream"])
def test_disk_full_on_checkpoint_save_names_path_and_cause(tmp_path, monkeypatch, failure):
    _save(tmp_path, [1])
    if failure == "oserror":
        monkeypatch.setattr(ckpt.torch, "save", _no_space)
    else:  # torch hides the cause: the free space of the filesystem tells it
        monkeypatch.setattr(ckpt.torch, "save", _iostream)
        monkeypatch.setattr(ckpt.os, "statvfs", lambda p: SimpleNamespace(f_bavail=0))
    with pytest.raises(CheckpointError) as err:
        _save(tmp_path, [2])
    msg = str(err.value)
    assert "no space left on the device" in msg and str(tmp_path / "step-2" / "weights.pt") in msg
    monkeypatch.undo()
    assert ckpt.find_latest(tmp_path, "fp") == tmp_path / "step-1"  # the older one is intact
    assert not list(tmp_path.glob(".step-2.tmp-*"))


def test_other_torch_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.torch, "save", _iostream)
    with pytest.raises(RuntimeError, match="iostream") as err:
        _save(tmp_path, [1])
    assert not isinstance(err.value, CheckpointError)


class SafetensorError(Exception):
    """What safetensors raises (its own class, the OS error only in the text)."""


def _safetensors_full(*a, **k):
    raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                          'message: "No space left on device" })')


@pytest.mark.parametrize("failure", ["torch_iostream", "safetensors"])
def test_disk_full_on_model_save_names_path_and_cause(tmp_path, monkeypatch, failure):
    class Model:
        def save_pretrained(self, path):
            (_iostream if failure == "torch_iostream" else _safetensors_full)()

    acc = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
    trainer = SimpleNamespace(acc=acc, unwrapped=lambda: Model(), ckpt_dir=tmp_path / "ckpt")
    if failure == "torch_iostream":
        monkeypatch.setattr(ckpt.os, "statvfs", lambda p: SimpleNamespace(f_bavail=0))
    out = tmp_path / "models" / "sft-s0"
    with pytest.raises(CheckpointError) as err:
        write_outputs(trainer, {"model": "m", "kind": "sft"}, None, out_dir=out,
                      metrics_path=tmp_path / "m.jsonl", summary_path=tmp_path / "s.json")
    assert "trained model" in str(err.value) and str(out) in str(err.value)
    assert "no space left on the device" in str(err.value)
    assert not out.exists()


def test_non_storage_os_errors_pass_unchanged(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ckpt.torch, "save", denied)
    with pytest.raises(PermissionError):
        _save(tmp_path, [1])
