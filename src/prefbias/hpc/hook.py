"""Called from the Snakefile after the rule files are included, and from its ``onstart``::

    from prefbias.hpc.hook import on_workflow_load, on_workflow_start
    on_workflow_load(workflow, config)
    onstart:
        on_workflow_start(workflow, config)

Snakemake picks its executor plugin only after the Snakefile is parsed, so the Slurm part runs in
``onstart`` (main process, real runs only: after the DAG is built, before the first submission).
In a job on a compute node (Snakemake's remote mode, every job that is not a localrule),
:func:`on_workflow_load` sets the node environment instead: offline HF libraries, the requested
GPU count and node-local caches. In the main Snakemake process only (jobs run with --no-hooks and
skip it):

* with the Slurm executor or apptainer: puts the ``cluster:`` job environment (HF_HOME,
  PREFBIAS_SCRATCH, APPTAINER_BIND) into ``os.environ`` — sbatch exports it, apptainer passes it in;
* with the Slurm executor: runs :func:`prefbias.hpc.preflight.check` on every non-local rule (and
  its image when ``--sdm apptainer``) and stops with one clear message before anything is
  submitted. ``PREFBIAS_SKIP_PREFLIGHT=1`` or ``--config cluster='{preflight: false}'`` skips it.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from prefbias.hpc import preflight
from prefbias.hpc.resources import job_gpus
from prefbias.hpc.site import (
    apply_job_environment,
    apply_node_job_environment,
    cluster_settings,
)


def _executor_name(workflow) -> str | None:
    plugin = getattr(workflow, "executor_plugin", None)
    return getattr(plugin, "common_name", None) or getattr(plugin, "name", None)


def _uses_apptainer(workflow) -> bool:
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ()) or ()
    # DeploymentMethod.APPTAINER (its value is a number) or the name as a string
    return any(str(getattr(m, "name", m)).lower() in ("apptainer", "singularity") for m in methods)


def apptainer_missing(workflow) -> bool:
    """``--sdm apptainer`` (the slurm profile) in the main process of a machine without
    apptainer or singularity: a login node or a laptop where a user looks at the plan first
    (``snakemake --profile slurm -n``). The rules then plan without their images (Snakemake
    would otherwise stop at its image check, before any dry run); a real run stops in onstart
    (:func:`on_workflow_start`)."""
    return (bool(getattr(workflow, "is_main_process", False)) and _uses_apptainer(workflow)
            and not (shutil.which("apptainer") or shutil.which("singularity")))


NO_APPTAINER_MESSAGE = ("--software-deployment-method apptainer (the slurm profile) needs "
                        "apptainer or singularity on PATH, and neither is installed here; a dry "
                        "run (-n) works without it")


def on_workflow_load(workflow, config: dict[str, Any]) -> None:
    """At parse time: the job environment for apptainer runs (deployment is known already).

    In a job on a compute node (Snakemake's remote mode: every job that is not a localrule,
    parsed again inside its Slurm job), the node environment of its rules:
    offline Hugging Face libraries, the GPU count the rules requested, caches on node-local
    scratch (:func:`prefbias.hpc.site.node_job_environment`)."""
    if getattr(workflow, "remote_exec", False):
        apply_node_job_environment(config, job_gpus(config, job_rules(workflow)))
        return
    if getattr(workflow, "is_main_process", False) and _uses_apptainer(workflow):
        apply_job_environment(config)


def job_rules(workflow, argv: list[str] | None = None) -> list[str]:
    """Rule names of the jobs a remote Snakemake process runs: its ``--target-jobs
    rule:wildcards ...`` (the executor's command line; Snakemake sets ``dag_settings`` only after
    the Snakefile is parsed, so the command line is read when they are not there yet)."""
    targets = getattr(getattr(workflow, "dag_settings", None), "target_jobs", None)
    if targets:
        return sorted({getattr(t, "rulename", None) or str(t).split(":", 1)[0] for t in targets})
    argv = sys.argv if argv is None else argv
    names: set[str] = set()
    for i, arg in enumerate(argv):
        if arg == "--target-jobs":
            for val in argv[i + 1:]:
                if val.startswith("-"):
                    break
                names.add(val.split(":", 1)[0])
        elif arg.startswith("--target-jobs="):
            names.add(arg.split("=", 1)[1].split(":", 1)[0])
    return sorted(names)


def _planned_rules(workflow) -> set[str] | None:
    """Names of the rules with jobs to run, or None when the DAG cannot be read."""
    dag = getattr(workflow, "dag", None)
    try:
        return {job.rule.name for job in dag.needrun_jobs()}
    except Exception:  # noqa: BLE001 - an older/newer DAG API: fall back to every rule
        return None


def on_workflow_start(workflow, config: dict[str, Any]) -> None:
    """From ``onstart``: with the Slurm executor, the job environment and the preflight checks of
    every non-local rule that has a job to run; raises WorkflowError with every problem."""
    if not getattr(workflow, "is_main_process", False):
        return
    if apptainer_missing(workflow):
        from snakemake.exceptions import WorkflowError

        raise WorkflowError(NO_APPTAINER_MESSAGE)
    executor = _executor_name(workflow) or ""
    if not executor.endswith("slurm"):
        return
    apply_job_environment(config)
    settings = cluster_settings(config)
    if os.environ.get("PREFBIAS_SKIP_PREFLIGHT") == "1" or settings.get("preflight") is False:
        return
    local = set(getattr(workflow, "_localrules", set()) or set())
    planned = _planned_rules(workflow)
    rules = [r.name for r in workflow.rules if r.name not in local and not r.norun
             and (planned is None or r.name in planned)]
    images = _images(workflow, config, rules) if _uses_apptainer(workflow) else None
    from snakemake.exceptions import WorkflowError

    # credentials: every planned rule, localrules included (downloads, API calls on the login node)
    cred_rules = [r.name for r in workflow.rules if not r.norun
                  and (planned is None or r.name in planned)]
    notes: list[str] = []
    try:
        problems = preflight.check(config, rules, images, root=workflow.basedir,
                                   credential_rules=cred_rules, notes=notes)
        for note in notes:
            print(f"preflight: note: {note}", file=sys.stderr)
    except preflight.PreflightError as e:
        raise WorkflowError(f"preflight: {e}") from None
    if problems:
        raise WorkflowError(preflight.format_problems(problems))


def _images(workflow, config: dict[str, Any], rules: list[str]) -> dict[str, str | None]:
    """``{rule: image}`` of the planned jobs of ``rules`` that run a command (a rule whose jobs
    use several images, e.g. a per-model backend: ``rule[image]``); without a readable DAG the
    image :func:`prefbias.hpc.needs.image_name` gives each rule."""
    from prefbias.hpc import needs
    from prefbias.rule_table import entry

    try:
        jobs = [j for j in workflow.dag.needrun_jobs() if j.rule.name in rules]
        urls = {(j.rule.name, j.container_img_url) for j in jobs if _needs_image(j.rule)}
    except Exception:  # noqa: BLE001 - an older/newer DAG API: one image per rule
        containers = config.get("containers") or {}
        urls = {(r, containers.get(needs.image_name(config, r))) for r in rules
                if entry(r).container}
    names = [r for r, _ in urls]
    return {(r if names.count(r) == 1 else f"{r}[{url}]"): url for r, url in urls}


def _needs_image(rule) -> bool:
    return bool(getattr(rule, "shellcmd", None) or getattr(rule, "script", None))
