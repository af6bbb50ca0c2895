"""What each rule needs to run: its container image, GPUs, internet access and credentials.

The ONE place that maps a rule to its image. A rule's image follows from the backend its
config section selects (``sycophancy.backend: vllm`` -> the ``vllm`` image, ``hf``/``openai``
-> ``train``), HELM rules always use ``helm``, everything else ``train``. ``rules/common.smk`` calls
:func:`image_name` through ``rule_image("<rule>")``; ``tests/test_containers.py`` checks, for
every rule and every backend the schema allows, that the chosen ``containers/<image>.def``
installs the package of that backend (:data:`BACKEND_PACKAGES`).

Internet and credentials (compute nodes often have no internet, docs/HPC.md):

* downloads (``fetch_dataset``, ``fetch_model``, ``helm_stage``) are localrules: login node;
* rules that call an HTTP API (``backend: openai`` of judge / generation / styles / reward, the
  ``llm`` sycophancy grader) need internet and the key named by their ``api_key_env``; they run as
  localrules or on ``cluster.internet.partition`` (:func:`api_local_rules`, resources.py);
* ``fetch_model`` of a gated hub repository (Gemma, Mistral, Llama) needs ``HF_TOKEN`` (or a token
  saved by ``hf auth login`` under ``$HF_HOME/token``).

:func:`missing_credentials` names what is missing, never printing a value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: backend -> image that installs it (vLLM cannot share the training stack: containers/vllm.def)
BACKEND_IMAGE = {"vllm": "vllm", "hf": "train", "openai": "train"}
#: backend -> the pip distribution that provides it (what the image's .def must install)
BACKEND_PACKAGES = {"vllm": ("vllm",), "hf": ("torch", "transformers"), "openai": ("openai",)}
#: rule -> config section whose ``backend`` chooses the rule's image
BACKEND_SECTION = {
    "style_shard": "styles",
    "generate": "generation",
    "sycophancy_answer": "sycophancy",
    "sycophancy_ays": "sycophancy",
    "judge": "judge",  # one rule for the first and the second judge ({judge} wildcard)
    "judge_check": "judge",
    "reward_winrate": "reward_winrate",
}
#: section -> backend when the section does not set one (the code's defaults)
DEFAULT_BACKEND = {"reward_winrate": "hf"}
#: rules that may call an HTTP API (the backend-chosen ones, and the sycophancy grader)
API_RULES = (*BACKEND_SECTION, "sycophancy_grade")
#: rules whose image does not depend on a backend
FIXED_IMAGE = {"helm_stage": "helm", "helm_run": "helm", "helm_summarize": "helm"}
#: packages a rule's command needs whatever its backend (checked against the .def as well)
RULE_PACKAGES = {"helm_stage": ("crfm-helm",), "helm_run": ("crfm-helm", "torch"),
                 "helm_summarize": ("crfm-helm",)}
DEFAULT_IMAGE = "train"
#: rules that download from the internet (declared ``localrules``: they run on the login node)
DOWNLOAD_RULES = ("fetch_dataset", "fetch_model", "helm_stage")
#: hub organisations whose repositories are gated (accept the licence on the hub, then HF_TOKEN)
GATED_ORGS = ("google/gemma", "mistralai/", "meta-llama/", "nvidia/Llama-")


def backend(config: dict[str, Any], rule: str) -> str | None:
    """The backend a rule uses (``vllm``/``hf``/``openai``), None for a rule without one."""
    section = BACKEND_SECTION.get(rule)
    if section is None:
        return None
    block = dict(config.get(section) or {})
    return block.get("backend") or DEFAULT_BACKEND.get(section)


def image_name(config: dict[str, Any], rule: str) -> str:
    """Name of the image (key of config ``containers:``) a rule runs in."""
    if rule in FIXED_IMAGE:
        return FIXED_IMAGE[rule]
    b = backend(config, rule)
    if b is not None:
        if b not in BACKEND_IMAGE:
            raise ValueError(f"config key '{BACKEND_SECTION[rule]}.backend': unknown backend "
                             f"{b!r} (known: {', '.join(BACKEND_IMAGE)})")
        return BACKEND_IMAGE[b]
    return DEFAULT_IMAGE


def packages(config: dict[str, Any], rule: str) -> tuple[str, ...]:
    """pip distributions the rule's image must install for this config."""
    out = list(RULE_PACKAGES.get(rule, ()))
    b = backend(config, rule)
    if b:
        out += BACKEND_PACKAGES[b]
    if rule == "sycophancy_grade" and _grader_kind(config) == "llm":
        out.append("openai")
    return tuple(dict.fromkeys(out))


def _grader_kind(config: dict[str, Any]) -> str:
    return config["sycophancy"]["grader"]["kind"]


def api_keys(config: dict[str, Any], rule: str) -> list[str]:
    """Environment variables holding the API keys a rule calls an HTTP API with ([] = none)."""
    keys: list[str] = []
    section = BACKEND_SECTION.get(rule)
    if section and backend(config, rule) == "openai":
        block = config.get(section) or {}
        if section in ("generation", "styles"):
            block = block.get("openai") or {}
        keys.append(block.get("api_key_env") or "OPENAI_API_KEY")
    second = (config.get("judge") or {}).get("second_judge") or {}
    if rule == "judge" and second.get("backend") == "openai":  # the second judge's jobs
        keys.append(second.get("api_key_env") or config["judge"].get("api_key_env")
                    or "OPENAI_API_KEY")
    if rule == "sycophancy_grade" and _grader_kind(config) == "llm":
        grader = (config.get("sycophancy") or {}).get("grader") or {}
        keys.append(grader.get("api_key_env") or "OPENAI_API_KEY")
    return list(dict.fromkeys(keys))


def calls_api(config: dict[str, Any], rule: str) -> bool:
    return bool(api_keys(config, rule))


def needs_internet(config: dict[str, Any], rule: str) -> bool:
    return rule in DOWNLOAD_RULES or calls_api(config, rule)


def gated_models(config: dict[str, Any]) -> list[str]:
    """Config model ids whose hub repository is gated (fetching needs HF_TOKEN)."""
    out = []
    for mid, m in (config.get("models") or {}).items():
        if m.get("source") == "hf" and str(m.get("repo", "")).startswith(GATED_ORGS):
            out.append(mid)
    return out


def credentials(config: dict[str, Any], rule: str) -> list[str]:
    """Environment variables a rule needs (names only)."""
    if rule == "fetch_model":
        return ["HF_TOKEN"] if gated_models(config) else []
    return api_keys(config, rule)


def hf_token_available(environ: dict[str, str]) -> bool:
    """HF_TOKEN set, or a token saved by ``hf auth login`` (``$HF_HOME/token``)."""
    if environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    home = environ.get("HF_HOME") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return (Path(home) / "token").is_file()


def missing_credentials(config: dict[str, Any], rules: list[str],
                        environ: dict[str, str] | None = None) -> list[str]:
    """One problem line per missing credential: the variable and the rules needing it.
    Only names are printed, never a value."""
    env = dict(os.environ if environ is None else environ)
    need: dict[str, list[str]] = {}
    for rule in rules:
        for var in credentials(config, rule):
            need.setdefault(var, []).append(rule)
    problems = []
    for var, rules_ in need.items():
        present = hf_token_available(env) if var == "HF_TOKEN" else bool(env.get(var))
        if present:
            continue
        if var == "HF_TOKEN":
            why = ("the gated hub repositories of models "
                   f"{', '.join(gated_models(config))} (accept each licence on the hub, then "
                   "export HF_TOKEN or run `hf auth login`)")
        else:
            why = "the HTTP API they call (export it in the shell that runs snakemake)"
        problems.append(f"environment variable {var} is not set: rules {', '.join(rules_)} "
                        f"need it for {why}")
    return problems
