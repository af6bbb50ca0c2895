"""The experiment plan: which models, preference sets and evaluations a config implies.

Both the Snakefile and the package use these functions, so model ids and paths are defined once.
Model ids are plain strings used as the ``{model}`` wildcard:

* base models: the keys of ``config["models"]`` (``qwen2.5-0.5b``, ``mistral-7b-it-v0.2`` ...)
* ``sft-s{seed}``                       SFT of ``sft.base_model``
* ``dpo-ultrafeedback-s{seed}``         DPO from ``sft-s{seed}`` on UltraFeedback
* ``dpo-{style}-s{seed}``               DPO from ``sft-s{seed}`` on a style variant
* ``orpo-{mix}-{instruct}-s{seed}``     ORPO+LoRA of an instruct model on a mix
                                        (aligned, aligned_saa)

Preference-set ids (``{prefset}``): ``ultrafeedback``, ``ultrafeedback-{style}``, ``dpo_mix_en``,
``saa``; stored as ``work/<run>/data/prefs/<prefset>/<split>.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: str                    # base | sft | dpo | orpo
    label: str                   # display name used in tables and figures
    seed: int | None = None
    init: str | None = None      # model id training starts from
    reference: str | None = None  # DPO reference model id
    prefsets: tuple[str, ...] = field(default_factory=tuple)
    recipe: str | None = None    # config section with the hyper-parameters
    group: str | None = None     # ultrafeedback | styles (dpo); aligned | aligned_saa (orpo)


STYLE_LABELS = {"authoritative": "Ultrafeedback authoritative",
                "sycophantic": "Ultrafeedback sycophantic",
                "persuasive": "Ultrafeedback persuasive"}


def workdir(config: dict[str, Any]) -> str:
    return f"work/{config['run']}"


def resultdir(config: dict[str, Any]) -> str:
    return f"results/{config['run']}"


def style_prefset(style: str) -> str:
    return f"ultrafeedback-{style}"


def prefsets(config: dict[str, Any]) -> set[str]:
    """Every preference-set id the config defines (see the module docstring)."""
    return {"ultrafeedback", "dpo_mix_en", "saa"} | {style_prefset(s)
                                                     for s in config["styles"]["names"]}


def trained_models(config: dict[str, Any]) -> dict[str, ModelSpec]:
    """Every model the config trains, keyed by id, in training order."""
    out: dict[str, ModelSpec] = {}
    for seed in config["seeds"]:
        sft = f"sft-s{seed}"
        out[sft] = ModelSpec(sft, "sft", "SFT", seed=seed, init=config["sft"]["base_model"],
                             prefsets=(), recipe="sft")
        uf = f"dpo-ultrafeedback-s{seed}"
        out[uf] = ModelSpec(uf, "dpo", "Ultrafeedback", seed=seed, init=sft, reference=sft,
                            prefsets=(config["dpo"]["ultrafeedback"]["prefset"],),
                            recipe="dpo.ultrafeedback", group="ultrafeedback")
        for style in config["styles"]["names"]:
            mid = f"dpo-{style}-s{seed}"
            out[mid] = ModelSpec(mid, "dpo", STYLE_LABELS.get(style, f"Ultrafeedback {style}"),
                                 seed=seed, init=sft, reference=sft,
                                 prefsets=(style_prefset(style),), recipe="dpo.styles",
                                 group="styles")
        for inst in config["orpo"]["instruct_models"]:
            for mix, prefsets in config["orpo"]["mixes"].items():
                mid = f"orpo-{mix}-{inst}-s{seed}"
                label = "aligned" if mix == "aligned" else mix.replace("_saa", "-SAA")
                out[mid] = ModelSpec(mid, "orpo", label, seed=seed, init=inst,
                                     prefsets=tuple(prefsets), recipe="orpo", group=mix)
    return out


def base_models(config: dict[str, Any]) -> dict[str, ModelSpec]:
    return {name: ModelSpec(name, "base", name) for name in config["models"]}


def all_models(config: dict[str, Any]) -> dict[str, ModelSpec]:
    return {**base_models(config), **trained_models(config)}


def model_dir(config: dict[str, Any], model: str) -> str:
    """Directory holding a loadable (``from_pretrained``) model."""
    kind = "base" if model in config["models"] else "trained"
    return f"{workdir(config)}/models/{kind}/{model}"


def stylized_models(config: dict[str, Any], seed: int) -> list[ModelSpec]:
    """The six models of stylized-dpo Tables 3-8, in the paper's row order."""
    base = config["sft"]["base_model"]
    trained = trained_models(config)
    rows = [ModelSpec(base, "base", "Qwen 2.5 0.5B"), trained[f"sft-s{seed}"],
            trained[f"dpo-ultrafeedback-s{seed}"]]
    rows += [trained[f"dpo-{s}-s{seed}"] for s in config["styles"]["names"]]
    return rows


def sycophancy_models(config: dict[str, Any], seed: int) -> list[ModelSpec]:
    """saa-orpo: per instruct model, the non-aligned, aligned and aligned-SAA models."""
    trained = trained_models(config)
    rows: list[ModelSpec] = []
    for inst in config["orpo"]["instruct_models"]:
        rows.append(ModelSpec(inst, "base", "non-aligned"))
        rows += [trained[f"orpo-{mix}-{inst}-s{seed}"] for mix in config["orpo"]["mixes"]]
    return rows


def evaluated_models(config: dict[str, Any]) -> list[str]:
    """Ids of every model that gets evaluated (both papers, all seeds), without duplicates."""
    seen: dict[str, None] = {}
    for seed in config["seeds"]:
        for spec in stylized_models(config, seed) + sycophancy_models(config, seed):
            seen.setdefault(spec.id, None)
    return list(seen)
