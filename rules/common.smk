# Path helpers and per-rule settings shared by every rule file. No pipeline logic here:
# model ids, preference sets and paper model lists come from prefbias.plan.
import json
import re

from prefbias import plan
from prefbias.hpc.resources import rule_resources, rule_threads

W = plan.workdir(config)
R = plan.resultdir(config)
SEEDS = config["seeds"]
STYLES = config["styles"]["names"]


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    dataset=r"[A-Za-z0-9_]+",
    split=r"[A-Za-z0-9_]+",
    prefset=r"[A-Za-z0-9_-]+",
    style=r"[a-z]+",
    promptset=r"[a-z_]+",
    scenario=r"[a-z_]+",
    seed=r"\d+",


def spec(*keys):
    """JSON of config sections, for `--spec {params.spec:q}` (drives params rerun-triggers)."""
    if len(keys) == 1:
        return json.dumps(config[keys[0]], sort_keys=True)
    return json.dumps({k: config[k] for k in keys}, sort_keys=True)


def res(rule_name):
    """Slurm resources of a rule from config['resources'] + config['cluster'] (docs/HPC.md);
    runtime and mem_mb are callables of `attempt`, so retries get cluster.escalate x more.
    """
    return rule_resources(config, rule_name)


def nthreads(rule_name):
    return rule_threads(config, rule_name)


def image(name):
    """Container image (path or oras://, docker:// URI with digest) for an environment."""
    return config.get("containers", {}).get(name)


def model_dir(model):
    return plan.model_dir(config, model)


def log_path(rule_name, *wildcard_names):
    parts = "_".join("{" + w + "}" for w in wildcard_names) or "all"
    return f"{R}/logs/{rule_name}/{parts}.log"


def bench_path(rule_name, *wildcard_names):
    parts = "_".join("{" + w + "}" for w in wildcard_names) or "all"
    return f"{R}/benchmarks/{rule_name}/{parts}.tsv"


def models_from(source):
    """Regex matching the ids of config models with this source (for wildcard_constraints)."""
    names = [m for m, s in config["models"].items() if s["source"] == source]
    return "|".join(re.escape(m) for m in names) or "(?!x)x"


# Scheduling (Snakemake runs the highest-priority ready jobs first): the stylized-dpo chain (base
# models, SFT data -> SFT -> style rewrites -> reference log-probs -> DPO) feeds the 30 HELM jobs,
# the largest stage, so it goes first; HELM next, so that it overlaps the ORPO, sycophancy and
# judge work instead of trailing behind it. Equal priorities would let HELM on the base and SFT
# models hold both cores while the style rewrites wait.
CRITICAL_PATH = 10
HELM_STAGE = 5
