# prefbias: raw data -> synthetic variants -> SAA -> SFT -> DPO/ORPO -> evaluations -> tables.
#   make demo                                  whole DAG on the tiny embedded default
#   snakemake --profile slurm                  the papers' experiment on a Slurm cluster
#   snakemake results/<run>/tables/table4.csv  one target
import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from prefbias.config import ConfigError, validate_config


configfile: "config.yaml"


try:
    validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None


include: "rules/common.smk"
include: "rules/data.smk"


rule all:
    default_target: True
    input:
        DATA_TARGETS,
