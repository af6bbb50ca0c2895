"""What the fork servers of ``prefbias warm`` import before serving (:mod:`prefbias.forkserver`).

Only imports: nothing here may start a thread or touch a device, since the server forks after it.
Lists are ``module`` or ``module:function`` items; a failing item costs speed, never results.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

# The training/evaluation environment: every `prefbias` subcommand.
MAIN = ["prefbias.warmup:training_stack", "prefbias.warmup:all_prefbias_modules",
        "prefbias.cli:build_parser", "prefbias.warmup:warm_matplotlib"]
# HELM's environment: `helm-run` (crfm-helm 0.5.16) with our local-checkpoint client.
HELM = ["prefbias.warmup:helm_stack", "prefbias.warmup:warm_misspellings",
        "prefbias.warmup:warm_punkt"]

_TRAINING = [
    "numpy", "pandas", "torch", "torch.nn.functional", "torch.optim", "safetensors.torch",
    "tokenizers", "transformers", "transformers.modeling_utils", "transformers.generation.utils",
    "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
    "transformers.models.qwen2.modeling_qwen2", "transformers.models.qwen2.configuration_qwen2",
    "transformers.tokenization_utils_fast", "accelerate", "peft", "datasets", "tqdm",
    "matplotlib", "matplotlib.pyplot", "jsonschema", "yaml",
]

_HELM = [
    "torch", "transformers", "transformers.modeling_utils", "transformers.generation.utils",
    "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
    "transformers.models.qwen2.modeling_qwen2", "transformers.tokenization_utils_fast",
    "helm.benchmark.run", "helm.benchmark.runner", "helm.benchmark.executor",
    "helm.benchmark.run_specs.classic_run_specs", "helm.benchmark.run_specs.lite_run_specs",
    "helm.benchmark.adaptation.adapters.adapter_factory",
    "helm.benchmark.adaptation.adapters.generation_adapter",
    "helm.benchmark.adaptation.adapters.multiple_choice_joint_adapter",
    "helm.benchmark.adaptation.adapters.multiple_choice_separate_adapter",
    "helm.benchmark.scenarios.boolq_scenario", "helm.benchmark.scenarios.mmlu_scenario",
    "helm.benchmark.scenarios.natural_qa_scenario", "helm.benchmark.scenarios.quac_scenario",
    "helm.benchmark.scenarios.commonsense_scenario",
    "helm.benchmark.augmentations.data_augmenter",
    "helm.benchmark.augmentations.mild_mix_perturbation",
    "helm.benchmark.augmentations.dialect_perturbation",
    "helm.benchmark.augmentations.gender_perturbation",
    "helm.benchmark.augmentations.person_name_perturbation",
    "helm.benchmark.metrics.basic_metrics", "helm.benchmark.metrics.classification_metrics",
    "helm.benchmark.metrics.evaluate_reference_metrics",
    "helm.clients.huggingface_client", "helm.tokenizers.huggingface_tokenizer",
    "helm.clients.auto_client", "helm.tokenizers.auto_tokenizer",
    "prefbias.evaluation.helm_client", "nltk",
]


def main_preload() -> list[str]:
    """:data:`MAIN`, or the comma-separated items of ``$PREFBIAS_FORKSERVER_PRELOAD`` (tests use
    a short list to start a server in a second instead of a minute)."""
    override = os.environ.get("PREFBIAS_FORKSERVER_PRELOAD")
    if override is not None:
        return [x for x in override.split(",") if x]
    return list(MAIN)


def _import_all(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module missing only costs speed
            pass


def training_stack() -> None:
    _import_all(_TRAINING)


def helm_stack() -> None:
    _import_all(_HELM)
    import helm.benchmark.run as helm_run
    from helm.benchmark.config_registry import register_builtin_configs_from_helm_package
    from helm.benchmark.run_spec import discover_run_spec_functions

    discover_run_spec_functions()  # imports every run-spec module (a registry, idempotent)
    # helm-run's first step parses HELM's packaged model/tokenizer YAML (~20 s here) into module
    # registries. Do it once in the server; each child then starts with exactly the registry a
    # fresh helm-run has after that step, and helm_run() must not append the same entries again.
    register_builtin_configs_from_helm_package()
    helm_run.register_builtin_configs_from_helm_package = _builtin_configs_already_registered


# Caches every helm-run would otherwise fill again, filled once in the HELM server before it
# forks (pure caches: a run computes exactly what it would compute cold). A failing item is
# logged by the server and only costs speed.
def warm_misspellings() -> None:
    """``MisspellingPerturbation`` (robustness, in every ``data_augmentation=canonical`` run)
    compiles one regex alternation of its whole misspelling list on construction: 7-18 s of an
    18-38 s tiny run here. :mod:`re` caches compiled patterns by source, so building one here
    leaves the compiled pattern in the cache each forked run inherits."""
    from helm.benchmark.augmentations.misspelling_perturbation import MisspellingPerturbation

    MisspellingPerturbation(prob=0.0)


def warm_punkt() -> None:
    """nltk's punkt sentence tokenizer (``word_tokenize`` in HELM's bias metrics), loaded from
    ``$NLTK_DATA`` once and kept by nltk's own cache."""
    from nltk.tokenize import word_tokenize

    word_tokenize("Warm the tokenizer. Nothing else.")


def warm_matplotlib() -> None:
    """A process's first saved figure imports the Agg and PDF backends and fontTools' subsetter
    (type-42 PDF fonts) and parses DejaVu Sans: a large part of each figure job here. One small
    PNG and PDF rendered into memory, with the paper figures' rcParams, leaves those imports and
    matplotlib's font cache in the server for every forked report job."""
    import io

    import matplotlib.pyplot as plt

    import prefbias.report.figures  # noqa: F401 - its rcParams (fonts, sizes) and Agg backend

    fig, ax = plt.subplots(figsize=(2.0, 1.2))
    ax.plot([0, 1], [0.2, 0.8], marker="o", label="warm-up")
    ax.errorbar([0.5], [0.5], yerr=[0.1], fmt="none")
    ax.set(title="Warm 0.5", xlabel="Step", ylabel="Score")
    ax.legend()
    for fmt in ("png", "pdf"):
        fig.savefig(io.BytesIO(), format=fmt, bbox_inches="tight")
    plt.close(fig)


def _builtin_configs_already_registered() -> None:
    """Stands in for HELM's ``register_builtin_configs_from_helm_package`` in forked children:
    the server registered the packaged configs before forking (see :func:`helm_stack`)."""


def all_prefbias_modules() -> None:
    """Every module of the package (optional backends such as vllm are skipped if missing)."""
    import prefbias

    _import_all([m.name for m in pkgutil.walk_packages(prefbias.__path__, "prefbias.")
                 if not m.name.startswith("prefbias.__main__")])
