"""Every job's params as Snakemake's params rerun-trigger records them, for a config.

    python -m tests.support.job_params CONFIGFILE... > params.json

prints ``{"<rule> <first output>": {"params": [serialised params], "deps": [job keys]}}`` for
every job of the whole DAG (``--forceall``), params serialised by Snakemake's own persistence
(``Persistence._params``): a job whose params differ between two configs is what Snakemake
replans when only the config changed (``--rerun-triggers params``), with everything downstream
of it (:func:`replanned`). No job runs and no metadata is written (``--nolock``). Optionally
a schema default is replaced first (``--schema-default``: what a changed default replans).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def planned_workflow(configfiles: list[str]):
    """Snakemake's workflow object for the Snakefile with these configs, its DAG built for every
    job (``--forceall``, ``--nolock``: nothing runs, no metadata is written)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                              config_settings=ConfigSettings(
                                  configfiles=[Path(p).resolve() for p in configfiles]),
                              snakefile=ROOT / "Snakefile", workdir=ROOT)
        dag_api = wf_api.dag(dag_settings=DAGSettings(forceall=True))
        wf = dag_api.workflow_api._workflow
        wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        wf._build_dag()
        yield wf


def job_key(job) -> str:
    return f"{job.rule.name} {job.output[0] if job.output else ''}"


def job_params(configfiles: list[str]) -> dict[str, list]:
    with planned_workflow(configfiles) as wf:
        return {job_key(job): {"params": wf.persistence._params(job),
                               "deps": sorted(job_key(d) for d in wf.dag.dependencies[job])}
                for job in wf.dag.jobs}


def replanned(before: dict[str, dict], after: dict[str, dict]) -> set[str]:
    """Jobs Snakemake replans on a finished run of ``before`` when run with ``after``: the jobs
    whose params changed (or that are new) and every job downstream of them."""
    out = {k for k, v in after.items() if k not in before or before[k]["params"] != v["params"]}
    grew = True
    while grew:
        new = {k for k, v in after.items() if k not in out and out.intersection(v["deps"])}
        out |= new
        grew = bool(new)
    return out


def rule_counts(jobs: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for k in jobs:
        counts[k.split()[0]] = counts.get(k.split()[0], 0) + 1
    return counts


def main(argv: list[str]) -> None:
    """``[--schema-default KEY.PATH=JSON]... CONFIGFILE...``: a schema default may be replaced
    first (what a changed default replans)."""
    files, patches = [], []
    while argv:
        arg = argv.pop(0)
        if arg == "--schema-default":
            path, value = argv.pop(0).split("=", 1)
            patches.append((path.split("."), json.loads(value)))
        else:
            files.append(arg)
    if patches:
        import prefbias.config as cfg

        schema = cfg.load_schema()
        for path, value in patches:
            node = schema
            for part in path:
                node = node["properties"][part]
            node["default"] = value
        cfg.load_schema = lambda: schema
        cfg._schema_cached = lambda: schema
    json.dump(job_params(files), sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
