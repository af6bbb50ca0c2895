"""What each rule needs to run: its container image, packages, internet access and credentials,
computed for a config from the rule's entry in :mod:`prefbias.rule_table` (the one table).

A rule's image follows from the backend its config section selects
(:func:`prefbias.plan.section_backend`: ``sycophancy.backend: vllm`` -> the ``vllm`` image,
``hf``/``openai`` -> ``train``), HELM rules always use ``helm``, everything else ``train``.
``rules/common.smk`` calls :func:`image_name` through ``rule_image("<rule>")`` (a function of the
job's wildcards); ``tests/test_containers.py`` checks, for every rule and every backend the schema
allows, that the chosen ``containers/<image>.def`` installs the package of that backend
(:data:`BACKEND_PACKAGES`).

Internet and credentials (compute nodes often have no internet, docs/HPC.md):

* downloads (``fetch_dataset``, ``fetch_model``, ``helm_stage``) are localrules: login node;
* rules that call an HTTP API (``backend: openai`` of judge / generation / styles / reward, the
  ``llm`` sycophancy grader) need internet and the key named by their ``api_key_env``; they run as
  localrules or on ``cluster.internet.partition`` (:mod:`prefbias.hpc.resources` decides where);
* ``fetch_model`` of a gated hub repository (Gemma, Mistral, Llama) needs ``HF_TOKEN`` (or a token
  saved by ``hf auth login`` under ``$HF_HOME/token``).

:func:`missing_credentials` names what is missing, never printing a value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefbias import plan
from prefbias.rule_table import dotted, entry

#: backend -> image that installs it (vLLM cannot share the training stack: containers/vllm.def)
BACKEND_IMAGE = {"vllm": "vllm", "hf": "train", "openai": "train"}
#: backend -> the pip distribution that provides it (what the image's .def must install)
BACKEND_PACKAGES = {"vllm": ("vllm",), "hf": ("torch", "transformers"), "openai": ("openai",)}
DEFAULT_IMAGE = "train"
#: hub organisations whose repositories are gated (accept the licence on the hub, then HF_TOKEN)
GATED_ORGS = ("google/gemma", "mistralai/", "meta-llama/", "nvidia/Llama-")


def backend(config: dict[str, Any], rule: str, model: str | None = None, **_: str) -> str | None:
    """The backend a rule's job uses (``vllm``/``hf``/``openai``; ``model``: the job's
    wildcard), None for a rule without one."""
    section = entry(rule).backend
    return None if section is None else plan.section_backend(config, section, model)


def image_name(config: dict[str, Any], rule: str, **wildcards: str) -> str:
    """Name of the image (key of config ``containers:``) a rule's job runs in."""
    e = entry(rule)
    if e.image:
        return e.image
    b = backend(config, rule, **wildcards)
    if b is None:
        return DEFAULT_IMAGE
    if b not in BACKEND_IMAGE:
        raise ValueError(f"config key '{e.backend}.backend': unknown backend {b!r} "
                         f"(known: {', '.join(BACKEND_IMAGE)})")
    return BACKEND_IMAGE[b]


def packages(config: dict[str, Any], rule: str, **wildcards: str) -> tuple[str, ...]:
    """pip distributions the rule's image must install for this config."""
    out = list(entry(rule).packages)
    b = backend(config, rule, **wildcards)
    if b:
        out += BACKEND_PACKAGES[b]
    if calls_api(config, rule, **wildcards):
        out.append("openai")  # every API is called with the openai client
    return tuple(dict.fromkeys(out))


def api_keys(config: dict[str, Any], rule: str, **wildcards: str) -> list[str]:
    """Environment variables holding the API keys a rule calls an HTTP API with ([] = none)."""
    keys = []
    for api in entry(rule).apis:
        used = (backend(config, rule, **wildcards) if api.when is None
                else dotted(config, api.when))
        if used == api.value:
            keys.append(next((v for v in (dotted(config, k) for k in api.key_env) if v),
                             "OPENAI_API_KEY"))
    return list(dict.fromkeys(keys))


def calls_api(config: dict[str, Any], rule: str, **wildcards: str) -> bool:
    return bool(api_keys(config, rule, **wildcards))


def needs_internet(config: dict[str, Any], rule: str, **wildcards: str) -> bool:
    return entry(rule).download or calls_api(config, rule, **wildcards)


def gated_models(config: dict[str, Any]) -> list[str]:
    """Config model ids whose hub repository is gated (fetching needs HF_TOKEN)."""
    out = []
    for mid, m in (config.get("models") or {}).items():
        if m.get("source") == "hf" and str(m.get("repo", "")).startswith(GATED_ORGS):
            out.append(mid)
    return out


def credentials(config: dict[str, Any], rule: str, **wildcards: str) -> list[str]:
    """Environment variables a rule needs (names only)."""
    token = ["HF_TOKEN"] if entry(rule).hf_token and gated_models(config) else []
    return token + api_keys(config, rule, **wildcards)


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
