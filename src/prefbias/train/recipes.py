"""The three recipes (SFT, DPO, ORPO+LoRA): config section -> TrainConfig -> Trainer -> outputs.

Every number comes from the config section passed as ``spec`` (``config["sft"]``, ``config["dpo"]``
with its ``ultrafeedback``/``styles`` sub-block merged over it, ``config["orpo"]``).
:func:`rule_inputs` tells the Snakemake rules which files a trained model needs, from
:func:`prefbias.plan.trained_models`.

Validation data: SFT uses ``W/data/sft/test.jsonl``; a preference set with a ``test`` split
(UltraFeedback) uses it, the others (dpo_mix_en, the style variants) hold out a seeded
``eval_holdout`` fraction of ``train`` (at most ``eval_max_examples`` rows). An ORPO mix holds
validation rows out of its base set only (``orpo.prefset``, dpo_mix_en; the first set of the mix
when ``prefset`` is not given): every row of an added set (the 1,000 SAA rows, saa-orpo §4.1) is
trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from prefbias.io import DataError
from prefbias.plan import (  # noqa: F401 - re-exported
    dpo_group_spec,
    has_test_split,
    model_seed,
    prefs_path,
    refs_path,
    rule_inputs,
)
from prefbias.train import refs as refs_mod
from prefbias.train import schedule
from prefbias.train.batching import encode_pairs, encode_sft, read_pairs, split_holdout, subsample
from prefbias.train.loop import TrainConfig, Trainer, TrainingError, write_outputs
from prefbias.train.tasks import DPOTask, ORPOTask, SFTTask

log = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------
def _require_rows(path: str | Path, stats) -> None:
    """An input file a recipe needs must have rows (and keep some after the length limits)."""
    if stats.n_rows == 0:
        raise DataError(path, "the file has no rows")
    if stats.n_kept == 0:
        raise DataError(path, f"none of its {stats.n_rows} rows is left after the length limits "
                        f"({stats.as_dict()})")


def _fingerprint(*parts: Any, files: list[str | Path] = (), model_dir: str | Path | None = None
                 ) -> dict[str, str]:
    """Identity of a run, as :class:`Trainer` keyword arguments: ``fingerprint`` over the
    settings (``checkpoint_keep`` aside: it changes no result), the data files' hashes and the
    initial model, and ``init_fingerprint``, the sha256 over the content of the initial model's
    weight, config and tokenizer files (:func:`prefbias.train.checkpoint.model_fingerprint`), so
    a resume on other weights of the same shapes is refused naming both."""
    from prefbias.io import sha256_file
    from prefbias.train.checkpoint import model_fingerprint

    parts = tuple({k: v for k, v in x.items() if k != "checkpoint_keep"}
                  if isinstance(x, dict) else x for x in parts)
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for f in files:
        h.update(sha256_file(f).encode())
    init = model_fingerprint(model_dir) if model_dir is not None else None
    if init is not None:
        h.update(init.encode())
    return {"fingerprint": h.hexdigest()[:16], "init_fingerprint": init}


def _optimizer(spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    opt = dict(spec["optimizer"])
    lr = opt.get("lr", spec.get("lr"))
    if "lr" in spec and "lr" in opt and float(spec["lr"]) != float(opt["lr"]):
        raise DataError("<config>", f"lr ({spec['lr']}) and optimizer.lr ({opt['lr']}) differ; "
                        "set them equal", field="optimizer.lr")
    if lr is None:
        raise DataError("<config>", "no learning rate", field="optimizer.lr")
    return float(lr), opt


def _world() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _load_model(init: str | Path, *, lora: bool):
    from prefbias.models.load import load_causal_lm

    cuda = torch.cuda.is_available()
    # Full fine-tuning keeps fp32 master weights (bf16 autocast on GPU); LoRA freezes a bf16 base.
    dtype = torch.bfloat16 if (cuda and lora) else torch.float32
    return load_causal_lm(init, dtype=dtype, device="cpu")


def _paths(out: str | Path, metrics: str | Path, summary: str | Path, ckpt: str | Path):
    return {"out_dir": out, "metrics_path": metrics, "summary_path": summary}, Path(ckpt)


def _tracking(track: dict[str, Any]) -> dict[str, Any]:
    """Trainer keywords from a recipe's ``track``: ``tracking`` (the config's ``tracking``
    section), ``tracking_dir`` (W&B / MLflow files, default beside the checkpoints) and ``tb``
    (where :func:`~prefbias.train.loop.write_outputs` keeps the TensorBoard event files)."""
    unknown = set(track) - {"tracking", "tracking_dir", "tb"}
    if unknown:
        raise TypeError(f"unknown tracking keywords {sorted(unknown)}")
    return {"tracking": track.get("tracking"), "tracking_dir": track.get("tracking_dir")}


# ---------------------------------------------------------------------------------------------
def train_config(kind: str, spec: dict[str, Any], *, model_id: str, seed: int,
                 **fixed: Any) -> TrainConfig:
    """The one TrainConfig of every recipe: each field from the section (schema defaults filled
    where the config was loaded, prefbias.config); ``fixed`` holds what a recipe computes."""
    lr, opt = _optimizer(spec)
    values = dict(kind=kind, model_id=model_id, seed=seed, batch_size=spec["batch_size"],
                  grad_accum=spec.get("grad_accum"), lr=lr, optimizer=opt,
                  cycles=spec["cycles"] if "cycles" in spec else 1, epochs=spec["epochs"],
                  max_steps=spec["max_steps"], warmup_ratio=spec["warmup_ratio"],
                  max_grad_norm=spec["max_grad_norm"], eval_steps=spec.get("eval_steps"),
                  eval_at_start=spec.get("eval_at_start", False),  # dpo only
                  checkpoint_steps=spec["checkpoint_steps"],
                  checkpoint_keep=spec["checkpoint_keep"],
                  group_by_length=spec["group_by_length"])
    return TrainConfig(**{**values, **fixed})


def train_sft(*, model_id: str, init: str, train: str, eval: str | None, spec: dict[str, Any],
              seed: int, out: str, metrics: str, summary: str, ckpt: str,
              eval_examples: str | None = None, **track: Any) -> dict[str, Any]:
    """``track``: :func:`_tracking` keywords (tracking, tracking_dir, tb)."""
    from prefbias.models.load import load_tokenizer

    tok = load_tokenizer(init)
    kw = dict(max_prompt_tokens=spec["max_prompt_tokens"],
              max_completion_tokens=spec["max_completion_tokens"], max_length=spec["max_length"],
              long_prompts=spec["long_prompts"])
    train_ex, tstats = encode_sft(train, tok, **kw)
    _require_rows(train, tstats)
    eval_ex = []
    if eval:
        eval_ex, estats = encode_sft(eval, tok, **kw)
        _require_rows(eval, estats)
        eval_ex = subsample(eval_ex, spec["eval_max_examples"], seed)
    cfg = train_config("sft", spec, model_id=model_id, seed=seed)
    fp = _fingerprint(spec, seed, model_id, files=[train], model_dir=init)
    model = _load_model(init, lora=False)
    trainer = Trainer(cfg, SFTTask(tok.pad_token_id), model, train_ex, eval_ex, ckpt_dir=ckpt,
                      **fp, summary_extra={"data": tstats.as_dict()}, **_tracking(track))
    summ = trainer.fit()
    write_outputs(trainer, summ, tok, out_dir=out, metrics_path=metrics, summary_path=summary,
                  eval_examples_path=eval_examples, tb_path=track.get("tb"))
    return summ


def _pairs_with_holdout(path: str, tok, spec: dict[str, Any], seed: int, prefix: str = ""):
    rows = read_pairs(path)
    if not rows:
        raise DataError(path, "the preference set is empty")
    tr, ev = split_holdout(rows, spec["eval_holdout"], seed, spec["eval_max_examples"],
                           spec.get("eval_min_examples", 1))  # eval_min_examples: dpo only
    kw = dict(max_length=spec.get("max_length", spec.get("cutoff_len")),
              long_prompts=spec["long_prompts"], id_prefix=prefix)
    tre, st = encode_pairs(path, tok, rows=tr, **kw)
    eve, _ = encode_pairs(path, tok, rows=ev, **kw)
    return tre, eve, st


def _pairs_all(path: str, tok, spec: dict[str, Any], prefix: str = ""):
    """Every row of a preference set for training (no validation slice)."""
    rows = read_pairs(path)
    if not rows:
        raise DataError(path, "the preference set is empty")
    tre, st = encode_pairs(path, tok, rows=rows, max_length=spec.get("max_length"),
                           long_prompts=spec["long_prompts"], id_prefix=prefix)
    return tre, [], st


def train_dpo(*, model_id: str, init: str, train: str, train_refs: str, eval: str | None,
              eval_refs: str | None, spec: dict[str, Any], seed: int, out: str, metrics: str,
              summary: str, ckpt: str, eval_examples: str | None = None, **track: Any
              ) -> dict[str, Any]:
    """``spec`` is the merged DPO section (prefbias.jobspec.dpo_spec); ``track`` as in
    :func:`train_sft`."""
    from prefbias.models.load import load_tokenizer

    tok = load_tokenizer(init)
    lp = spec["long_prompts"]
    ref = refs_mod.load(train_refs, data_path=train, max_length=spec["max_length"],
                        reference_dir=init, long_prompts=lp)
    if eval:
        train_ex, st = encode_pairs(train, tok, max_length=spec["max_length"], long_prompts=lp)
        _require_rows(train, st)
        eval_ex, est = encode_pairs(eval, tok, max_length=spec["max_length"], long_prompts=lp)
        _require_rows(eval, est)
        eval_ex = subsample(eval_ex, spec["eval_max_examples"], seed)
        ref.update(refs_mod.load(eval_refs, data_path=eval, max_length=spec["max_length"],
                                 reference_dir=init, long_prompts=lp))
    else:
        train_ex, eval_ex, st = _pairs_with_holdout(train, tok, spec, seed)
    missing = [e.id for e in train_ex + eval_ex if e.id not in ref]
    if missing:
        raise refs_mod.StaleReferenceError(f"{train_refs}: no reference log-probs for rows "
                                           f"{missing[:5]} (stale table)")
    # stylized-dpo §4.2's two schedule sentences, each a config choice (train/schedule.py)
    sched = {k: spec[k] for k in ("cycle_mode", "lr_schedule_over")}
    schedule.lr_schedule_over(sched)  # validates
    cfg = train_config("dpo", spec, model_id=model_id, seed=seed,
                       cycles=schedule.trained_cycles(spec),
                       extra={"beta": spec["beta"], **sched})
    fp = _fingerprint(spec, seed, model_id, files=[train, train_refs], model_dir=init)
    model = _load_model(init, lora=False)
    trainer = Trainer(cfg, DPOTask(tok.pad_token_id, spec["beta"], ref), model, train_ex, eval_ex,
                      ckpt_dir=ckpt, **fp,
                      summary_extra={"data": st.as_dict(), "beta": spec["beta"], **sched,
                                     "cycles_in_config": spec.get("cycles", 1)},
                      **_tracking(track))
    summ = trainer.fit()
    write_outputs(trainer, summ, tok, out_dir=out, metrics_path=metrics, summary_path=summary,
                  eval_examples_path=eval_examples, tb_path=track.get("tb"))
    return summ


def orpo_grad_accum(spec: dict[str, Any], world: int) -> int:
    per = spec["batch_size"] * world
    if spec["effective_batch_size"] % per:
        raise TrainingError(f"orpo.effective_batch_size={spec['effective_batch_size']} is not a "
                            f"multiple of batch_size×devices={per}")
    return spec["effective_batch_size"] // per


def train_orpo(*, model_id: str, init: str, train: list[str], spec: dict[str, Any], seed: int,
               out: str, metrics: str, summary: str, ckpt: str,
               eval_examples: str | None = None, **track: Any) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model

    from prefbias.models.load import load_tokenizer

    tok = load_tokenizer(init)
    train_ex, eval_ex, stats = [], [], {}
    names = [Path(p).parent.name for p in train]
    held_from = spec.get("prefset") or names[0]
    if held_from not in names:
        raise DataError(str(train[0]), f"orpo.prefset {held_from!r} is not one of the mix's sets "
                        f"{names}", field="orpo.prefset")
    kw = {**spec, "max_length": spec["cutoff_len"]}
    for path, prefset in zip(train, names, strict=True):
        if prefset == held_from:
            tr, ev, st = _pairs_with_holdout(path, tok, kw, seed, prefix=f"{prefset}/")
        else:
            tr, ev, st = _pairs_all(path, tok, kw, prefix=f"{prefset}/")
        train_ex += tr
        eval_ex += ev
        stats[prefset] = {**st.as_dict(), "n_train": len(tr), "n_eval": len(ev)}
    cfg = train_config("orpo", spec, model_id=model_id, seed=seed,
                       grad_accum=orpo_grad_accum(spec, _world()), cycles=1,
                       extra={"lam": spec["lam"], "lora": spec["lora"]})
    fp = _fingerprint(spec, seed, model_id, files=list(train), model_dir=init)
    torch.manual_seed(seed)
    base = _load_model(init, lora=True)
    lcfg = spec["lora"]
    model = get_peft_model(base, LoraConfig(
        r=lcfg["r"], lora_alpha=lcfg["alpha"], lora_dropout=lcfg["dropout"],
        target_modules=lcfg["target_modules"], task_type="CAUSAL_LM"))
    task = ORPOTask(tok.pad_token_id, spec["lam"], spec["nll_on_prompt"])
    trainer = Trainer(cfg, task, model, train_ex, eval_ex, ckpt_dir=ckpt, **fp,
                      summary_extra={"data": stats, "lam": spec["lam"]}, **_tracking(track))
    summ = trainer.fit()
    write_outputs(trainer, summ, tok, out_dir=out, metrics_path=metrics, summary_path=summary,
                  lora=True, eval_examples_path=eval_examples, tb_path=track.get("tb"))
    return summ
