"""Per-rule Slurm resources from ``config['resources']`` and ``config['cluster']``.

``config['resources']`` maps rule names to ``{slurm_partition, gpu, gpu_model, cpus_per_task,
mem_mb, runtime, slurm_extra, ...}``; ``default`` fills in what a rule does not set. A partition
may be a role named in ``cluster.partitions`` (``gpu``, ``cpu``) or a literal partition name.

Retries escalate: on attempt *k* ``runtime`` and ``mem_mb`` are multiplied by
``cluster.escalate.<key> ** (k - 1)`` and clipped to ``cluster.max.<key>``.

``rules/common.smk`` is a thin call::

    def res(rule_name):
        return rule_resources(config, rule_name)   # runtime/mem_mb are callables of `attempt`
"""

from __future__ import annotations

import math
from typing import Any

from prefbias import rule_table
from prefbias.hpc import needs
from prefbias.hpc.site import cluster_settings, partition

#: resource keys a ``resources.<rule>`` entry may set (all passed to the Slurm executor plugin)
KEYS = ("slurm_partition", "slurm_account", "gpu", "gpu_model", "cpus_per_task", "mem_mb",
        "runtime", "slurm_extra", "constraint", "qos", "tasks", "nodes", "disk_mb")
ESCALATING = ("runtime", "mem_mb")

#: rules that need a GPU in the paper configuration (documentation and tests)
GPU_RULES = rule_table.GPU_RULES


class ResourceError(ValueError):
    pass


def rule_entry(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """``resources.default`` overlaid by ``resources.<rule>`` (raw, unresolved)."""
    table = config.get("resources") or {}
    merged = dict(table.get("default") or {})
    merged.update(table.get(rule_table.entry(rule).resources or rule) or {})
    unknown = sorted(set(merged) - set(KEYS))
    if unknown:
        raise ResourceError(f"config key 'resources.{rule}': unknown resource(s) {unknown}; "
                            f"allowed: {list(KEYS)}")
    return merged


def computed_runtime(config: dict[str, Any], rule: str, wildcards: Any = None) -> int | None:
    """Runtime (minutes) computed from the work, for rules whose work is known in advance:
    ``helm_run`` (:mod:`prefbias.hpc.helm_cost`; per job, or the longest job without
    wildcards). None: the rule's ``resources`` runtime applies."""
    if rule != "helm_run" or not isinstance(config.get("helm"), dict):
        return None
    from prefbias.hpc import helm_cost

    helm = config["helm"]
    scenario = getattr(wildcards, "scenario", None) if wildcards is not None else None
    return max(helm_cost.runtime_minutes(helm, job)
               for job in helm_cost.job_scenarios(helm, scenario))


def resolve(config: dict[str, Any], rule: str, attempt: int = 1,
            environ: dict[str, str] | None = None, wildcards: Any = None) -> dict[str, Any]:
    """Concrete Slurm resources of ``rule`` on retry ``attempt`` (1 = first try).

    Partition roles become partition names, the account and GPU model come from ``cluster:``
    unless the rule sets them, GPU requests are dropped when ``cluster.use_gpus`` is false (the
    rule then goes to the ``cpu`` partition role) and for rules whose config section says
    ``backend: openai`` (:func:`prefbias.hpc.needs.backend`), runtime/memory escalate with the
    attempt, everything is clipped to ``cluster.max``. Empty values are left out.

    Rules that call an HTTP API (:func:`prefbias.hpc.needs.calls_api`) go to
    ``cluster.internet.partition`` (no GPU) or ``cluster.internet.gpu_partition`` (with GPUs)
    when set: compute nodes often cannot reach the internet (without it they are localrules).
    """
    s = cluster_settings(config, environ)
    r = rule_entry(config, rule)
    computed = computed_runtime(config, rule, wildcards)
    if computed is not None:
        if (config.get("resources") or {}).get(rule, {}).get("runtime") not in (None, ""):
            raise ResourceError(f"config key 'resources.{rule}.runtime': the runtime of {rule} "
                                "is computed from its work (docs/HPC.md); remove the key and "
                                "tune helm.cost instead")
        r["runtime"] = computed
    gpus = int(r.get("gpu") or 0)
    part = r.get("slurm_partition")
    wc = dict(wildcards.items()) if hasattr(wildcards, "items") else {}  # the job's, if given
    api_only = needs.backend(config, rule, **wc) == "openai"
    if not s["use_gpus"] or api_only:
        if gpus and part == "gpu":
            part = "cpu"
        gpus = 0
    inet = s.get("internet") or {}
    if needs.calls_api(config, rule, **wc):
        part = (inet.get("gpu_partition") if gpus else inet.get("partition")) or part
    out: dict[str, Any] = {}
    out["slurm_partition"] = partition(s, part)
    out["slurm_account"] = r.get("slurm_account") or s["account"] or None
    if gpus:
        out["gpu"] = gpus
        out["gpu_model"] = r.get("gpu_model") or s["gpu_model"] or None
    factor = s["escalate"]
    for key in ("cpus_per_task", "mem_mb", "runtime", "disk_mb", "tasks", "nodes"):
        if r.get(key) in (None, ""):
            continue
        val = float(r[key])
        if key in ESCALATING and attempt > 1:
            val *= float(factor.get(key, 1.0)) ** (attempt - 1)
        out[key] = int(math.ceil(val))
    for key in ("slurm_extra", "constraint", "qos"):
        if r.get(key):
            out[key] = r[key]
    for key, cap in (s.get("max") or {}).items():
        if key in out and isinstance(out[key], int) and cap:
            out[key] = min(out[key], int(cap))
    return {k: v for k, v in out.items() if v not in (None, "")}


def runtime_problems(config: dict[str, Any], rules: list[str]) -> list[str]:
    """A computed runtime that ``cluster.max.runtime`` would cut: the job would be killed."""
    from prefbias.hpc import helm_cost

    cap = (cluster_settings(config).get("max") or {}).get("runtime")
    if "helm_run" not in rules or not cap or computed_runtime(config, "helm_run") is None:
        return []
    helm = config["helm"]
    out = []
    for job in helm_cost.job_scenarios(helm):
        need = helm_cost.runtime_minutes(helm, job)
        if need > int(cap):
            out.append(f"helm_run on {', '.join(job)} needs {need} min (helm.cost arithmetic, "
                       f"docs/HPC.md) but cluster.max.runtime is {cap}: lower "
                       "helm.max_eval_instances or helm.num_output_tokens, or raise the limit")
    return out


def requested_gpus(config: dict[str, Any], rule: str) -> int:
    """GPUs the rule's Slurm job asks for (0 on CPU)."""
    return int(resolve(config, rule, 1).get("gpu", 0))


def job_gpus(config: dict[str, Any], rules: list[str]) -> int:
    """The most GPUs any of ``rules`` (a job group's rules) asks for."""
    return max((requested_gpus(config, r) for r in rules), default=0)


def rule_resources(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """The ``resources:`` of a rule for Snakemake: ``runtime``/``mem_mb`` are callables of the
    attempt (``lambda wildcards, attempt: ...``), the rest plain values."""
    first = resolve(config, rule, 1)
    out: dict[str, Any] = dict(first)
    for key in ESCALATING:
        if key in first:
            out[key] = _escalating(config, rule, key)
    return out


def rule_threads(config: dict[str, Any], rule: str) -> int:
    return int(resolve(config, rule, 1).get("cpus_per_task", 1))


def _escalating(config: dict[str, Any], rule: str, key: str):
    def value(wildcards, attempt):  # Snakemake passes arguments by these names
        return resolve(config, rule, attempt, wildcards=wildcards)[key]

    value.__name__ = f"{rule}_{key}"
    return value


# ------------------------------------------------------------------------------------------------
# where rules run, from what they need (prefbias.hpc.needs) and the resources they ask for
# ------------------------------------------------------------------------------------------------
def _internet(config: dict[str, Any]) -> dict[str, str]:
    return cluster_settings(config).get("internet") or {}


def api_local_rules(config: dict[str, Any], rules: list[str]) -> list[str]:
    """API-calling rules that run on the login node: all of them unless
    ``cluster.internet.partition`` names a partition whose nodes reach the internet. Rules that
    also need a GPU never become local (see :func:`internet_problems`)."""
    inet = _internet(config)
    if inet.get("partition"):
        return []
    return [r for r in rules if needs.calls_api(config, r) and not requested_gpus(config, r)]


def internet_problems(config: dict[str, Any], rules: list[str]) -> list[str]:
    """A rule that needs a GPU and the internet (e.g. sycophancy with the ``llm`` grader) can
    run neither on the login node nor on an offline GPU node."""
    inet = _internet(config)
    bad = [r for r in rules if needs.calls_api(config, r) and requested_gpus(config, r)
           and not inet.get("gpu_partition")]
    if not bad:
        return []
    return [f"rules {', '.join(bad)} need a GPU and the internet (an API call): set "
            "cluster.internet.gpu_partition to a GPU partition whose nodes reach the internet, "
            "or use an offline setting (sycophancy.grader.kind: match)"]


def local_rules(config: dict[str, Any]) -> list[str]:
    """The ``localrules`` of the workflow (rules/common.smk): the rules the table marks local
    (downloads, quick rules in Snakemake's process) and the API rules of :func:`api_local_rules`."""
    return list(dict.fromkeys([*rule_table.LOCAL_RULES,
                               *api_local_rules(config, list(rule_table.API_RULES))]))


def table(config: dict[str, Any], rules: list[str]) -> list[dict[str, Any]]:
    """Per rule: image, GPUs, internet, credentials, where it runs (``prefbias resources
    --needs``, docs/HPC.md)."""
    local = set(local_rules(config))
    rows = []
    for r in rules:
        gpus = requested_gpus(config, r)
        rows.append({"rule": r, "image": needs.image_name(config, r) if rule_table.entry(
                        r).container else None,
                     "gpus": gpus, "internet": needs.needs_internet(config, r),
                     "credentials": needs.credentials(config, r),
                     "runs_on": ("login node (localrule)" if r in local
                                 else "gpu partition" if gpus else "cpu partition")})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """:func:`table` as docs/HPC.md shows it (``prefbias resources --needs --markdown``)."""
    lines = ["| rule | image | GPUs | internet | credentials | runs on |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['rule']} | {row['image'] or '-'} | {row['gpus']} | "
                     f"{'yes' if row['internet'] else 'no'} | "
                     f"{', '.join(row['credentials']) or '-'} | {row['runs_on']} |")
    return "\n".join(lines) + "\n"
