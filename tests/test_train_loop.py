"""End-to-end training on tiny models: SFT, reference log-probs + DPO, ORPO+LoRA, resume, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prefbias.io import DataError, write_jsonl
from prefbias.train import recipes, refs, synthetic
from prefbias.train.checkpoint import CheckpointError
from prefbias.train.loop import SimulatedCrash, TrainingError
from tests.support.sections import job_section

# sections as jobs receive them: the schema's defaults filled (tests/support/sections.py)
SFT = job_section("sft", {
    "max_prompt_tokens": 128, "max_completion_tokens": 128, "max_length": 256, "cycles": 2,
    "epochs": 1, "batch_size": 4, "grad_accum": 2, "eval_steps": 2, "warmup_ratio": 0.1,
    "max_grad_norm": 1.0, "eval_max_examples": 4, "checkpoint_steps": 2,
    "optimizer": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.95], "weight_decay": 0.01}})
DPO = job_section("dpo", {
    "batch_size": 2, "grad_accum": 2, "max_length": 128, "eval_steps": 2, "warmup_ratio": 0.1,
    "cycles": 1, "epochs": 1, "max_steps": None, "beta": 0.1, "max_grad_norm": 1.0,
    "eval_max_examples": 4, "checkpoint_steps": 2,
    "optimizer": {"name": "rmsprop", "lr": 1e-3, "weight_decay": 0.01}}, group="ultrafeedback")
ORPO = job_section("orpo", {
    "cutoff_len": 128, "effective_batch_size": 4, "batch_size": 2, "lr": 1e-3, "epochs": 1,
    "lam": 0.1, "warmup_ratio": 0.1, "max_grad_norm": 1.0, "checkpoint_steps": 2,
    "optimizer": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}})


@pytest.fixture(scope="module")
def env(tmp_path_factory, synthetic_model):
    d = tmp_path_factory.mktemp("train")
    return {"dir": d, "model": synthetic_model(),
            **synthetic.write_setup(d / "data")}


def _out(tmp: Path, name: str) -> dict[str, str]:
    return {"out": str(tmp / "models" / name), "metrics": str(tmp / "r" / name / "metrics.jsonl"),
            "summary": str(tmp / "r" / name / "summary.json"), "ckpt": str(tmp / "ckpt" / name),
            "eval_examples": str(tmp / "r" / name / "eval_examples.jsonl")}


def _examples(o: dict[str, str]) -> list[dict]:
    return [json.loads(x) for x in Path(o["eval_examples"]).read_text().splitlines()]


def _sft(env, tmp, name="sft-s0", spec=SFT, train=None):
    return recipes.train_sft(model_id=name, init=str(env["model"]),
                             train=str(train or env["sft_train"]), eval=str(env["sft_test"]),
                             spec=spec, seed=0, **_out(tmp, name))


def _weights(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(Path(path) / "model.safetensors")


def test_sft_end_to_end(env, tmp_path):
    summ = _sft(env, tmp_path)
    o = _out(tmp_path, "sft-s0")
    from prefbias.models.load import load_causal_lm, load_tokenizer

    load_causal_lm(o["out"], device="cpu")
    load_tokenizer(o["out"])
    rows = [json.loads(x) for x in Path(o["metrics"]).read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    # 24 rows / (4 × 2) = 3 steps per cycle, 2 cycles
    assert [r["step"] for r in train_rows] == list(range(1, 7))
    assert all({"step", "epoch", "split", "loss", "lr", "grad_norm"} <= set(r) for r in rows)
    assert any(r["split"] == "eval" for r in rows)
    s = json.loads(Path(o["summary"]).read_text())
    assert s == json.loads(json.dumps(summ))
    assert s["steps"] == 6 and s["kind"] == "sft" and s["final_eval_loss"] is not None
    assert s["final_eval_reward_accuracy"] is None
    assert 0 <= s["padding_waste"] < 1 and s["tokens_per_s"] > 0
    assert not Path(o["ckpt"]).exists()  # checkpoints dropped once outputs exist
    # the final eval per example: token-weighted, it gives back the logged validation loss
    ex = _examples(o)
    assert len(ex) == s["n_eval"] and len({e["id"] for e in ex}) == len(ex)
    assert sum(e["nll_sum"] for e in ex) / sum(e["n_tokens"] for e in ex) == pytest.approx(
        s["final_eval_loss"], rel=1e-5)


def test_resume_after_crash_gives_identical_weights(env, tmp_path, monkeypatch):
    _sft(env, tmp_path / "a")
    ref = _weights(_out(tmp_path / "a", "sft-s0")["out"])
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "5")  # checkpoint at 4, crash after 5 (cycle 2)
    with pytest.raises(SimulatedCrash):
        _sft(env, tmp_path / "b")
    o = _out(tmp_path / "b", "sft-s0")
    assert not Path(o["out"]).exists() and not Path(o["summary"]).exists()
    assert (Path(o["ckpt"]) / "latest").read_text().strip() == "step-4"
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    summ = _sft(env, tmp_path / "b")
    got = _weights(o["out"])
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    assert summ["steps"] == 6
    rows = [json.loads(x) for x in Path(o["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 7))


def test_missing_checkpoint_file_is_named(env, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "3")
    with pytest.raises(SimulatedCrash):
        _sft(env, tmp_path)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    ck = Path(_out(tmp_path, "sft-s0")["ckpt"]) / "step-2" / "optimizer.pt"
    ck.unlink()
    with pytest.raises(CheckpointError, match="optimizer.pt"):
        _sft(env, tmp_path)
    assert not Path(_out(tmp_path, "sft-s0")["out"]).exists()


def test_changed_settings_refuse_stale_checkpoint(env, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFBIAS_CRASH_AT_STEP", "3")
    with pytest.raises(SimulatedCrash):
        _sft(env, tmp_path)
    monkeypatch.delenv("PREFBIAS_CRASH_AT_STEP")
    with pytest.raises(CheckpointError, match="other settings"):
        _sft(env, tmp_path, spec={**SFT, "warmup_ratio": 0.2})


def test_empty_dataset_errors(env, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl.*no rows"):
        _sft(env, tmp_path, train=empty)
    assert not Path(_out(tmp_path, "sft-s0")["out"]).exists()
    with pytest.raises(DataError, match="empty.jsonl.*no rows"):  # an empty validation file too
        recipes.train_sft(model_id="sft-s0", init=str(env["model"]), train=str(env["sft_train"]),
                          eval=str(empty), spec=SFT, seed=0, **_out(tmp_path, "sft-s0"))


def test_long_prompt_error_names_row(env, tmp_path):
    rows = synthetic.sft_rows(4)
    rows[2]["messages"][-2]["content"] = "word " * 400
    p = tmp_path / "long.jsonl"
    write_jsonl(p, rows)
    with pytest.raises(DataError, match=rf"{rows[2]['id']}.*max_prompt_tokens"):
        _sft(env, tmp_path, train=p, spec={**SFT, "long_prompts": "error"})
    summ = _sft(env, tmp_path, train=p, spec={**SFT, "cycles": 1})  # default: dropped, counted
    assert summ["data"]["n_dropped_long_prompt"] == 1


def test_nan_loss_stops_with_error(env, tmp_path):
    from prefbias.models.load import load_causal_lm, load_tokenizer

    bad = tmp_path / "nanmodel"
    m = load_causal_lm(env["model"], device="cpu")
    with torch.no_grad():
        m.model.norm.weight.fill_(float("nan"))
    m.save_pretrained(bad)
    load_tokenizer(env["model"]).save_pretrained(bad)
    with pytest.raises(TrainingError, match="non-finite loss"):
        recipes.train_sft(model_id="sft-s0", init=str(bad), train=str(env["sft_train"]),
                          eval=None, spec=SFT, seed=0, **_out(tmp_path, "sft-s0"))
    assert not Path(_out(tmp_path, "sft-s0")["out"]).exists()


def test_refs_and_dpo(env, tmp_path):
    init = env["model"]
    rt, re_ = tmp_path / "refs/train.pt", tmp_path / "refs/test.pt"
    refs.compute(init, env["prefs_train"], rt, max_length=128)
    refs.compute(init, env["prefs_test"], re_, max_length=128)
    summ = recipes.train_dpo(model_id="dpo-ultrafeedback-s0", init=str(init),
                             train=str(env["prefs_train"]), train_refs=str(rt),
                             eval=str(env["prefs_test"]), eval_refs=str(re_), spec=DPO, seed=0,
                             **_out(tmp_path, "dpo"))
    assert summ["steps"] == 4 and summ["final_eval_reward_accuracy"] is not None
    rows = [json.loads(x) for x in Path(_out(tmp_path, "dpo")["metrics"]).read_text().splitlines()]
    ev = [r for r in rows if r["split"] == "eval"]
    assert ev and all({"reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward"}
                      <= set(r) for r in ev)
    first = next(r for r in rows if r["split"] == "train")
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    ex = _examples(_out(tmp_path, "dpo"))  # per pair: mean loss / accuracy = the final eval
    assert len(ex) == summ["n_eval"]
    assert sum(e["loss"] for e in ex) / len(ex) == pytest.approx(summ["final_eval_loss"],
                                                                 rel=1e-5)
    assert sum(e["correct"] for e in ex) / len(ex) == pytest.approx(
        summ["final_eval_reward_accuracy"])

    # hold-out variant (no test split), max_steps caps the run
    summ = recipes.train_dpo(model_id="dpo-styled-s0", init=str(init),
                             train=str(env["prefs_train"]), train_refs=str(rt), eval=None,
                             eval_refs=None, spec={**DPO, "max_steps": 2}, seed=0,
                             **_out(tmp_path, "dpo2"))
    assert summ["steps"] == 2 and summ["n_eval"] >= 1

    # stylized-dpo §4.2's readings (train/schedule.py): 2 cycles chained = 2 × 4 steps,
    # independent = one 4-step run; max_steps 3 of 4 (15 rows / 2 / 2): schedule over the 3
    # steps (warm-up 1): lr 0, 1, 1/2 × 1e-3; over the epoch's 4: 0, 1, 2/3 × 1e-3
    def run(name, **kw):
        s = recipes.train_dpo(model_id="dpo-x-s0", init=str(init), train=str(env["prefs_train"]),
                              train_refs=str(rt), eval=None, eval_refs=None,
                              spec={**DPO, **kw}, seed=0, **_out(tmp_path, name))
        m = [json.loads(x) for x in Path(_out(tmp_path, name)["metrics"]).read_text()
             .splitlines()]
        return s, [r["lr"] for r in m if r["split"] == "train"]

    ind, _ = run("ind", cycles=2, cycle_mode="independent")
    chn, _ = run("chn", cycles=2)
    assert (ind["steps"], chn["steps"]) == (4, 8)
    assert (ind["cycle_mode"], ind["cycles_in_config"], ind["config"]["cycles"]) == \
        ("independent", 2, 1)
    _, lr_steps = run("over_steps", max_steps=3)
    _, lr_epoch = run("over_epoch", max_steps=3, lr_schedule_over="epochs")
    assert lr_steps == pytest.approx([0.0, 1e-3, 0.5e-3])
    assert lr_epoch == pytest.approx([0.0, 1e-3, 2e-3 / 3])

    # stale tables are refused
    rows = synthetic.pref_rows(16, 0)
    rows[0]["chosen"] += " changed"
    write_jsonl(tmp_path / "changed.jsonl", rows)
    with pytest.raises(refs.StaleReferenceError, match="another version"):
        refs.load(rt, data_path=tmp_path / "changed.jsonl", max_length=128)
    with pytest.raises(refs.StaleReferenceError, match="max_length"):
        refs.load(rt, data_path=env["prefs_train"], max_length=64)


def test_orpo_lora(env, tmp_path):
    summ = recipes.train_orpo(model_id="orpo-aligned_saa-x-s0", init=str(env["model"]),
                              train=[str(env["prefs_train"]), str(env["prefs2_train"])],
                              spec=ORPO, seed=0, **_out(tmp_path, "orpo"))
    o = Path(_out(tmp_path, "orpo")["out"])
    assert (o / "adapter" / "adapter_config.json").exists()
    from prefbias.models.load import load_causal_lm

    merged = load_causal_lm(o, device="cpu")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    # validation rows come out of the first set only: 15 + all 10 = 25 pairs = 13 micro-batches
    # of 2, 2 per step -> 7 steps
    assert summ["steps"] == 7 and summ["config"]["grad_accum"] == 2
    assert (summ["data"]["prefs"]["n_eval"], summ["data"]["prefs2"]["n_eval"]) == (1, 0)
    assert summ["data"]["prefs2"]["n_train"] == 10
    assert summ["final_eval_reward_accuracy"] is not None
    ex = _examples(_out(tmp_path, "orpo"))
    assert len(ex) == summ["n_eval"] and all(set(e) == {"id", "correct", "margin"} for e in ex)
    assert sum(e["correct"] for e in ex) / len(ex) == pytest.approx(
        summ["final_eval_reward_accuracy"])


def test_orpo_grad_accum_must_divide():
    assert recipes.orpo_grad_accum({"effective_batch_size": 16, "batch_size": 2}, 4) == 2
    with pytest.raises(TrainingError, match="multiple"):
        recipes.orpo_grad_accum({"effective_batch_size": 16, "batch_size": 3}, 1)


def test_rule_inputs(tiny_config):
    ins = recipes.rule_inputs(tiny_config, "dpo-ultrafeedback-s0")
    assert ins["train_refs"].endswith("refs/sft-s0/ultrafeedback/train.pt")
    assert "eval_refs" in ins
    style = tiny_config["styles"]["names"][0]
    ins = recipes.rule_inputs(tiny_config, f"dpo-{style}-s0")
    assert "eval" not in ins and ins["init"].endswith("models/trained/sft-s0")
    ins = recipes.rule_inputs(tiny_config, "orpo-aligned_saa-gemma-7b-it-s0")
    assert [Path(p).parent.name for p in ins["train"]] == ["dpo_mix_en", "saa"]
    assert recipes.rule_inputs(tiny_config, "sft-s0")["init"].endswith("models/base/qwen2.5-0.5b")
