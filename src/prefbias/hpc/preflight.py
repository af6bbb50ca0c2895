"""Checks against the live Slurm cluster and the image files, before any job is submitted.

What Slurm would otherwise report late or cryptically (``Invalid partition name specified``,
``Requested node configuration is not available``, a job that fails on the node because its image
is missing) is reported here, once per problem, naming the rules, the config key to change and
what the cluster offers. Every Slurm command runs with a timeout.

Use: ``prefbias preflight --configfile config.yaml`` or, from the Snakefile, :func:`check` via
:mod:`prefbias.hpc.hook` (automatic with ``--profile slurm``).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefbias.hpc.resources import ResourceError, internet_problems, resolve, runtime_problems
from prefbias.hpc.site import cluster_settings

URI_SCHEMES = ("docker://", "oras://", "library://", "shub://", "https://", "http://")
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::(?P<type>[A-Za-z0-9_.\-]+))?:(?P<n>\d+)")


class PreflightError(RuntimeError):
    """Slurm could not be asked (command missing, failing or too slow)."""


@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict[str, int] = field(default_factory=dict)  # gres type ('' = untyped) -> count

    def n_gpus(self, model: str | None = None) -> int:
        if not model:
            return sum(self.gpus.values())
        return self.gpus.get(model, 0)


@dataclass
class ClusterFacts:
    partitions: dict[str, list[Node]]
    accounts: set[str] | None  # None: accounting not queryable (no check possible)
    user: str


def _run(cmd: list[str], timeout: float) -> str:
    if shutil.which(cmd[0]) is None:
        raise PreflightError(f"`{cmd[0]}` not found in PATH: run this on a Slurm login node "
                             "(or with the Slurm client installed)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PreflightError(f"`{' '.join(cmd)}` did not answer within {timeout:g} s: is "
                             "slurmctld reachable? (cluster.command_timeout_s)") from None
    if proc.returncode != 0:
        raise PreflightError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def parse_gres(gres: str) -> dict[str, int]:
    """``gpu:h100:4(S:0-1),tmpdisk:100`` -> ``{'h100': 4}``; ``gpu:2`` -> ``{'': 2}``."""
    out: dict[str, int] = {}
    for m in _GRES_GPU.finditer(re.sub(r"\([^)]*\)", "", gres or "")):
        out[m.group("type") or ""] = out.get(m.group("type") or "", 0) + int(m.group("n"))
    return out


def query_cluster(timeout: float = 30) -> ClusterFacts:
    """Partitions with their nodes (CPUs, memory, GPUs) and the user's accounts."""
    text = _run(["sinfo", "-h", "-N", "-o", "%R|%N|%c|%m|%G"], timeout)
    partitions: dict[str, list[Node]] = defaultdict(list)
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        part, node, cpus, mem, gres = parts
        mem_mb = int(re.sub(r"\D.*", "", mem) or 0)
        partitions[part].append(Node(node, int(re.sub(r"\D.*", "", cpus) or 0), mem_mb,
                                     parse_gres(gres)))
    user = os.environ.get("USER") or getpass.getuser()
    accounts: set[str] | None
    try:
        text = _run(["sacctmgr", "-n", "-P", "list", "associations", f"user={user}",
                     "format=account"], timeout)
        accounts = {a.strip() for a in text.splitlines() if a.strip()}
    except PreflightError:
        accounts = None
    return ClusterFacts(dict(partitions), accounts, user)


def _is_uri(image: str) -> bool:
    return image.startswith(URI_SCHEMES)


def check_images(images: dict[str, str | None], root: Path | str = ".") -> list[str]:
    """Problems with the images rules use: ``{rule: image}`` (image None = no image set)."""
    missing_cfg, missing_file, unpinned = defaultdict(list), defaultdict(list), defaultdict(list)
    for rule, image in sorted(images.items()):
        if not image:
            missing_cfg["-"].append(rule)
        elif _is_uri(image):
            if image.startswith(("docker://", "oras://")) and "@sha256:" not in image:
                unpinned[image].append(rule)
        elif not (Path(root) / image).is_file():
            missing_file[image].append(rule)
    problems = []
    for rules in missing_cfg.values():
        problems.append(f"rules {', '.join(rules)} have no container image: set it under "
                        "'containers:' in config.yaml")
    for image, rules in missing_file.items():
        name = Path(image).stem
        problems.append(f"image file '{image}' does not exist (needed by {', '.join(rules)}): "
                        f"build it with `apptainer build {image} containers/{name}.def` "
                        "(docs/HPC.md) or point 'containers:' at it")
    for image, rules in unpinned.items():
        problems.append(f"image '{image}' (used by {', '.join(rules)}) is not pinned by digest: "
                        "write it as <uri>@sha256:<digest>")
    return problems


def check_resources(config: dict[str, Any], rules: Iterable[str], facts: ClusterFacts) -> list[str]:
    """Problems of the rules' resolved resources against the cluster's partitions and accounts."""
    bad_part: dict[str, list[str]] = defaultdict(list)
    bad_acct: dict[str, list[str]] = defaultdict(list)
    too_many: dict[tuple, list[str]] = defaultdict(list)
    problems: list[str] = []
    known = ", ".join(sorted(facts.partitions)) or "none"
    for rule in sorted(set(rules)):
        try:
            r = resolve(config, rule)
        except ResourceError as e:
            problems.append(str(e))
            continue
        part = r.get("slurm_partition")
        acct = r.get("slurm_account")
        if acct and facts.accounts is not None and acct not in facts.accounts:
            bad_acct[acct].append(rule)
        if not part:
            continue
        nodes = facts.partitions.get(part)
        if nodes is None:
            bad_part[part].append(rule)
            continue
        gpus, model = int(r.get("gpu", 0)), r.get("gpu_model")
        if gpus:
            best = max(n.n_gpus(model) for n in nodes)
            if gpus > best:
                offered = sorted({f"{t or 'gpu'}:{c}" for n in nodes for t, c in n.gpus.items()})
                too_many[("gpu", part, gpus, model or "", best, ", ".join(offered))].append(rule)
        for key, attr in (("cpus_per_task", "cpus"), ("mem_mb", "mem_mb")):
            want = int(r.get(key, 0))
            best = max(getattr(n, attr) for n in nodes)
            if want > best:
                too_many[(key, part, want, "", best, "")].append(rule)
    for part, rules_ in bad_part.items():
        problems.append(f"partition '{part}' does not exist on this cluster (rules "
                        f"{', '.join(rules_)}); partitions here: {known}. Set "
                        "cluster.partitions (or PREFBIAS_GPU_PARTITION / PREFBIAS_CPU_PARTITION) "
                        "or resources.<rule>.slurm_partition")
    for acct, rules_ in bad_acct.items():
        mine = ", ".join(sorted(facts.accounts or [])) or "none"
        problems.append(f"account '{acct}' does not exist or user '{facts.user}' is not "
                        f"associated with it (rules {', '.join(rules_)}); your accounts: {mine}. "
                        "Set cluster.account (or PREFBIAS_SLURM_ACCOUNT)")
    for (key, part, want, model, best, offered), rules_ in too_many.items():
        if key == "gpu":
            what = f"{want} GPU(s)" + (f" of type '{model}'" if model else "")
            if best == 0:
                has = f"no node in partition '{part}' has " + (
                    f"GPUs of type '{model}' (gres there: {offered or 'none'})" if model
                    else "any GPU")
            else:
                has = f"the largest node in partition '{part}' has {best}"
            fix = ("lower resources.<rule>.gpu, use a GPU partition (cluster.partitions.gpu), fix "
                   "cluster.gpu_model, or set cluster.use_gpus: false to run on CPUs")
            problems.append(f"rules {', '.join(rules_)} ask for {what} but {has}: {fix}")
        else:
            unit = " MB" if key == "mem_mb" else ""
            problems.append(f"rules {', '.join(rules_)} ask for {key}={want}{unit} but the largest "
                            f"node in partition '{part}' has {best}{unit}: lower "
                            f"resources.<rule>.{key} (or cluster.max.{key})")
    return problems


def check(config: dict[str, Any], rules: Iterable[str], images: dict[str, str | None] | None = None,
          facts: ClusterFacts | None = None, root: Path | str = ".", *,
          credential_rules: Iterable[str] | None = None, environ: dict[str, str] | None = None,
          driver: str | None = None, notes: list[str] | None = None) -> list[str]:
    """All problems (empty list = ready to submit). ``images`` None skips the image checks.

    Besides partitions/accounts/sizes and images: missing credentials of ``credential_rules``
    (default ``rules``; localrules need theirs too: names only, never a value), rules needing a
    GPU and the internet with no such partition, and the GPU nodes' driver against the images'
    CUDA torch (``driver`` or ``cluster.gpu_driver`` or nvidia-smi; unknown -> a line in
    ``notes``)."""
    from prefbias.hpc import gpu, needs

    rules = list(rules)
    problems: list[str] = []
    if images is not None:
        problems += check_images(images, root)
    problems += needs.missing_credentials(
        config, list(rules if credential_rules is None else credential_rules), environ)
    problems += internet_problems(config, rules)
    problems += runtime_problems(config, rules)
    drv_problems, drv_notes = gpu.driver_problems(config, rules, root, driver)
    problems += drv_problems
    if notes is not None:
        notes += drv_notes
    if facts is None:
        timeout = float(cluster_settings(config).get("command_timeout_s") or 30)
        facts = query_cluster(timeout)
    problems += check_resources(config, rules, facts)
    return problems


def format_problems(problems: list[str]) -> str:
    return (f"preflight found {len(problems)} problem(s) before submitting to Slurm:\n  - "
            + "\n  - ".join(problems))
