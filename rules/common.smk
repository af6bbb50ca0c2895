# Path helpers and per-rule settings shared by every stage file; no pipeline logic here.
# Model ids, preference sets and paper model lists come from prefbias.plan.
import json
import os
import re
import sys

from prefbias import plan
from prefbias.jobspec import job_spec_json
from prefbias.hpc import hook as _hook
from prefbias.hpc import needs as _needs
from prefbias.hpc.resources import local_rules, rule_resources, rule_threads
from prefbias.io import write_json

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


def job_spec(rule_name):
    """Params function: JSON of exactly the config a job of this rule reads (prefbias.jobspec),
    so a config edit reruns only the jobs that read what changed."""
    return lambda wildcards: job_spec_json(config, rule_name, **dict(wildcards.items()))


def res(rule_name):
    """Slurm resources of a rule from config['resources'] + config['cluster'] (docs/HPC.md);
    runtime and mem_mb are callables of `attempt`, so retries get cluster.escalate x more.
    """
    return rule_resources(config, rule_name)


def nthreads(rule_name):
    return rule_threads(config, rule_name)


# --sdm apptainer where apptainer is not installed: plan without images, so that a dry run works
# (`snakemake --profile slurm -n` on a login node or laptop); a real run stops in onstart
NO_APPTAINER = _hook.apptainer_missing(workflow)
if NO_APPTAINER:
    print(
        f"note: {_hook.NO_APPTAINER_MESSAGE}: planning without images", file=sys.stderr
    )


def image(name):
    """Container image (path or oras://, docker:// URI with digest) for an environment."""
    return None if NO_APPTAINER else config.get("containers", {}).get(name)


def rule_image(rule_name):
    """The image of a rule's job, from the backend it uses for the job's wildcards
    (prefbias.hpc.needs.image_name, from the rule's entry in prefbias.rule_table)."""
    return lambda wildcards: image(
        _needs.image_name(config, rule_name, **dict(wildcards.items()))
    )


# Downloads and quick rules run on the login node (prefbias.rule_table: `local`), and so do
# API-calling rules unless cluster.internet.partition names a partition whose nodes reach the
# internet (docs/HPC.md "Internet and credentials").
# (the localrules directive takes literal names only: its method, with the computed list)
workflow.localrules(*local_rules(config))


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
    return plan.rule_inputs(config, wildcards.model)


def _refs_inputs(wildcards):
    return {
        "model": model_dir(wildcards.refmodel),
        "prefs": plan.prefs_path(config, wildcards.prefset, wildcards.split),
    }


def _dpo_eval_args(wildcards, input):
    if "eval" in input.keys():
        return f"--eval {input.eval} --eval-refs {input.eval_refs}"
    return ""


# evaluate.smk
def _local_model(block):
    """Model directory of a local (hf) judge or reward model, else no input."""
    return [model_dir(block["model"])] if block.get("backend") == "hf" else []


def judge_block(judge):
    """The first judge's config block, or the second judge's merged over it (judge wildcard)."""
    return plan.resolve_judge_spec(config["judge"], judge)


def _judge_dir_arg(block):
    dirs = _local_model(block)
    return f"--judge-model-dir {dirs[0]}" if dirs else ""


# report.smk: the table and figure rules, one job per item of prefbias.plan.REPORT_ITEMS. Their
# main files are flagged report() so the HTML report shows them grouped by paper; captions:
# report/table.rst, report/figure.rst (per item, Jinja) and report/vs_paper.rst.
def caption(name):
    return f"{workflow.basedir}/report/{name}.rst"


def in_checkout(path):
    """A path of the checkout relative to the working directory (inputs and params must not
    hold the checkout's absolute location: moving it would rerun the jobs)."""
    return os.path.relpath(path)


def _item_label(kind, what):
    """report() labels of an item's file: its display name in the HTML report."""
    return lambda w: {
        "item": plan.REPORT_ITEMS[getattr(w, kind)].title,
        "content": what,
    }


def _in_report(path, kind, subcategory, what, caption_name):
    return report(
        path,
        caption=caption(caption_name),
        category=lambda w: plan.REPORT_ITEMS[getattr(w, kind)].paper,
        subcategory=subcategory,
        labels=_item_label(kind, what),
    )


def report_item_inputs(kind):
    """Input function of the table / figure rule: the files the item reads."""
    return lambda w: plan.report_inputs(config, getattr(w, kind))


def report_item_spec(kind):
    """Params function: JSON of prefbias.plan.report_spec (rows, notice, item keys), so a
    config edit reruns only the items whose rows or keys changed."""
    return lambda w: json.dumps(
        plan.report_spec(config, getattr(w, kind)), sort_keys=True
    )


def report_item_notice(kind):
    """Params function: the item's stand-in notice (the caption reads it)."""
    return lambda w: plan.provenance_notice(
        config, plan.item_model_roles(config, getattr(w, kind))
    )


def table_files(name):
    p = f"{R}/tables/{name}"
    return [
        f"{p}.csv",
        f"{p}.md",
        f"{p}.html",
        f"{p}.tex",
        f"{p}_vs_paper.csv",
        f"{p}_vs_paper.md",
        f"{p}_vs_paper.html",
    ]


def figure_files(name):
    return [f"{R}/figures/{name}.png", f"{R}/figures/{name}.pdf"]


def item_files(name):
    kind = plan.REPORT_ITEMS[name].kind
    return table_files(name) if kind == "table" else figure_files(name)


def results_of(wildcards, output):
    """results/<run>/ of a table or figure (R/tables/table3.csv -> R)."""
    return os.path.dirname(os.path.dirname(output[0]))


def prefix_of(wildcards, output):
    """The --out-prefix of a table or figure (R/tables/table3.csv -> R/tables/table3)."""
    return os.path.splitext(output[0])[0]
