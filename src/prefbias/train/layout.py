"""What each trained model needs: file paths for the Snakemake rules (torch-free, so parsing the
Snakefile stays fast — every Slurm job re-parses it)."""

from __future__ import annotations

from typing import Any

from prefbias import plan


def prefs_path(config: dict[str, Any], prefset: str, split: str) -> str:
    return f"{plan.workdir(config)}/data/prefs/{prefset}/{split}.jsonl"


def refs_path(config: dict[str, Any], refmodel: str, prefset: str, split: str) -> str:
    return f"{plan.workdir(config)}/refs/{refmodel}/{prefset}/{split}.pt"


def has_test_split(config: dict[str, Any], prefset: str) -> bool:
    return prefset == config["dpo"]["ultrafeedback"]["prefset"]


def dpo_group_spec(config: dict[str, Any], group: str) -> dict[str, Any]:
    d = config["dpo"]
    base = {k: v for k, v in d.items() if k not in ("ultrafeedback", "styles")}
    return {**base, **d[group]}


def rule_inputs(config: dict[str, Any], model: str) -> dict[str, Any]:
    """Input files of the rule that trains ``model`` (named as the rule's ``input:`` keys)."""
    specs = plan.trained_models(config)
    if model not in specs:
        raise KeyError(f"'{model}' is not a trained model of this config")
    m = specs[model]
    W = plan.workdir(config)
    out: dict[str, Any] = {"init": plan.model_dir(config, m.init)}
    if m.kind == "sft":
        out.update(train=f"{W}/data/sft/train.jsonl", eval=f"{W}/data/sft/test.jsonl")
    elif m.kind == "dpo":
        (ps,) = m.prefsets
        out["train"] = prefs_path(config, ps, "train")
        out["train_refs"] = refs_path(config, m.reference, ps, "train")
        if has_test_split(config, ps):
            out["eval"] = prefs_path(config, ps, "test")
            out["eval_refs"] = refs_path(config, m.reference, ps, "test")
    elif m.kind == "orpo":
        out["train"] = [prefs_path(config, ps, "train") for ps in m.prefsets]
    return out


def dpo_group(config: dict[str, Any], model: str) -> str:
    return plan.trained_models(config)[model].group


def model_seed(config: dict[str, Any], model: str) -> int:
    return int(plan.trained_models(config)[model].seed)
