# prefbias: raw data -> synthetic variants -> SAA -> SFT -> DPO/ORPO -> evaluations -> tables.
#   make demo                                  whole DAG on the tiny embedded default
#   snakemake --profile slurm                  the papers' experiment on a Slurm cluster
#   snakemake results/<run>/tables/table4.csv  one target
import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from prefbias.config import ConfigError, validate_config

# Paths in the config (fixtures, work/, results/) are relative to the repository root: run there.
# Without this check Snakemake skips a missing config.yaml when --configfile names an overlay,
# and the validation lists every required key as missing.
if not os.path.exists("config.yaml"):
    raise WorkflowError(
        f"config.yaml not found here ({os.getcwd()}): run Snakemake from the repository root"
        f" (cd {workflow.basedir}, or add --directory {workflow.basedir})"
    )


configfile: "config.yaml"


# the report's landing page: report/workflow.rst, headed by run/commit when `prefbias
# snakemake-report` builds the report (prefbias.report.html.landing_page)
report: os.environ.get("PREFBIAS_REPORT_LANDING", "report/workflow.rst")


try:
    validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/synthetic.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/helm.smk"
include: "rules/pages.smk"
include: "rules/report.smk"


from prefbias.hpc.hook import on_workflow_load, on_workflow_start

on_workflow_load(
    workflow, config
)  # preflight + HF/scratch binds, with --profile slurm only


rule all:
    default_target: True
    input:
        DATA_TARGETS,
        SYNTHETIC_TARGETS,
        TRAIN_TARGETS,
        GENERATE_TARGETS,
        EVALUATE_TARGETS,
        HELM_TARGETS,
        REPORT_TARGETS,
        PAGES_TARGETS,
        f"{R}/MANIFEST.json",


onstart:
    # A frozen results/<run>/ is read-only; a rerun makes it writable again (verify still checks
    # every file against MANIFEST.json, and the freeze rule re-freezes at the end).
    from pathlib import Path
    from prefbias.report.freeze import make_writable

    make_writable(Path(R))
    # with --profile slurm: job environment + preflight (partitions, account, GPUs, images)
    on_workflow_start(workflow, config)


onsuccess:
    # onstart made a frozen results/<run>/ writable; give the read-only state back when the
    # run leaves a manifest (a stale one is still reported by `prefbias verify`)
    from pathlib import Path
    from prefbias.report.freeze import (
        make_readonly,
        refreeze_hint,
        written_after_freeze,
    )

    if Path(R, "MANIFEST.json").exists():
        later = written_after_freeze(R)
        if (
            later
        ):  # e.g. one target regenerated, byte-identical: the freeze did not rerun
            print(
                f"note: {len(later)} file(s) of {R} changed after its freeze ({later[0]}, ...):"
                f" `prefbias verify {R}` reports them; freeze again: {refreeze_hint(R, config['run'])}",
                file=sys.stderr,
            )
        make_readonly(Path(R))
