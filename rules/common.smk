# Path helpers and per-rule settings shared by every stage file; no pipeline logic here.
# Model ids, preference sets and paper model lists come from prefbias.plan.
import json
import os
import re

from prefbias import plan
from prefbias.config import sections_json
from prefbias.hpc.resources import rule_resources, rule_threads
from prefbias.report import catalog as _catalog
from prefbias.train import layout as _recipes

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
    """JSON of config sections, for `--spec {params.spec:q}` (prefbias.config.sections_json)."""
    return sections_json(config, *keys)


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
    parts = "_".join(f"{{{w}}}" for w in wildcard_names) or "all"
    return f"{R}/logs/{rule_name}/{parts}.log"


def bench_path(rule_name, *wildcard_names):
    parts = "_".join(f"{{{w}}}" for w in wildcard_names) or "all"
    return f"{R}/benchmarks/{rule_name}/{parts}.tsv"


def models_from(*sources):
    """Regex matching the ids of config models with these sources (for wildcard_constraints)."""
    names = [m for m, s in config["models"].items() if s["source"] in sources]
    return "|".join(re.escape(m) for m in names) or "(?!x)x"


# Scheduling (Snakemake runs the highest-priority ready jobs first): the stylized-dpo chain (base
# models, SFT data -> SFT -> style rewrites -> reference log-probs -> DPO) feeds the 30 HELM jobs,
# the largest stage, so it goes first; HELM next, so that it overlaps the ORPO, sycophancy and
# judge work instead of trailing behind it. Equal priorities would let HELM on the base and SFT
# models hold both cores while the style rewrites wait.
CRITICAL_PATH = 10
HELM_STAGE = 5


# ------------------------------------------------------------------------------------------------
# Input functions and path helpers of the stage files (rules/*.smk hold rules only).


# data.smk
def dataset_splits(name):
    """Our split names of config['datasets'][name] (hf: `splits` keys, url/local: `files` keys)."""
    ds = config["datasets"][name]
    return list(ds["splits"] if ds["source"] == "hf" else ds["files"])


def raw_files(name):
    return [f"{W}/raw/{name}/{split}.jsonl" for split in dataset_splits(name)]


# models.smk
def tokenizer_corpus(wildcards):
    """Raw files the tiny tokenizer is trained on (the demo's own fixture text)."""
    return [
        f"{W}/raw/smol_smoltalk/train.jsonl",
        f"{W}/raw/ultrafeedback/train.jsonl",
        f"{W}/raw/bct/train.jsonl",
    ]


# train.smk
def _train_inputs(wildcards):
    return _recipes.rule_inputs(config, wildcards.model)


def _refs_inputs(wildcards):
    return {
        "model": model_dir(wildcards.refmodel),
        "prefs": _recipes.prefs_path(config, wildcards.prefset, wildcards.split),
    }


def _dpo_eval_args(wildcards, input):
    if "eval" in input.keys():
        return f"--eval {input.eval} --eval-refs {input.eval_refs}"
    return ""


# evaluate.smk
def _local_model(block):
    """Model directory of a local (hf) judge or reward model, else no input."""
    return [model_dir(block["model"])] if block.get("backend") == "hf" else []


def _judge_dir_arg(block):
    dirs = _local_model(block)
    return f"--judge-model-dir {dirs[0]}" if dirs else ""


# report.smk: the main file of every table and figure is flagged report() (caption:
# report/<name>.rst), so the HTML report shows them grouped by paper (prefbias.report.catalog).
def _ids(rows):
    return list(dict.fromkeys(r["id"] for r in rows))


def caption(name):
    return f"{workflow.basedir}/report/{name}.rst"


def _in_report(path, name, subcategory, what, caption_file):
    paper, item, _kind = _catalog.ITEMS[name]
    return report(
        path,
        caption=caption_file,
        category=paper,
        subcategory=subcategory,
        labels={"item": item, "content": what},
    )


def results_of(wildcards, output):
    """results/<run>/ of a table or figure (R/tables/table3.csv -> R)."""
    return os.path.dirname(os.path.dirname(output[0]))


def prefix_of(wildcards, output):
    """The --out-prefix of a table or figure (R/tables/table3.csv -> R/tables/table3)."""
    return os.path.splitext(output[0])[0]


def table_out(name):
    p = f"{R}/tables/{name}"
    return [
        _in_report(f"{p}.csv", name, "Tables", "reproduced", caption(name)),
        f"{p}.md",
        f"{p}.tex",
        _in_report(
            f"{p}_vs_paper.csv",
            name,
            "Reported vs reproduced",
            "reported vs reproduced",
            caption("vs_paper"),
        ),
        f"{p}_vs_paper.md",
    ]


def figure_out(name):
    p = f"{R}/figures/{name}"
    return [
        _in_report(f"{p}.png", name, "Figures", "reproduced", caption(name)),
        f"{p}.pdf",
    ]
