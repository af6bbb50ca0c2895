"""The ``cluster:`` config section: the one place for site settings.

Every string value may be written ``${VAR:-default}`` (or ``${VAR}``, ``$VAR``): the environment
variable wins when set and non-empty, else the default. ``~`` is expanded in paths.

    cluster:
      account: ${PREFBIAS_SLURM_ACCOUNT:-}          # '' -> no -A (Slurm's default account)
      partitions: {gpu: ${PREFBIAS_GPU_PARTITION:-h100}, cpu: ${PREFBIAS_CPU_PARTITION:-cpu}}
      gpu_model: ${PREFBIAS_GPU_MODEL:-}            # gres type -> --gpus=<model>:<n>
      use_gpus: true                                # false: GPU rules run on the cpu partition
      scratch: ${PREFBIAS_SCRATCH:-}                # bound into every container
      hf_cache: ${HF_HOME:-~/.cache/huggingface}    # HF_HOME of every job, bound into containers
      node_scratch: ${PREFBIAS_NODE_SCRATCH:-}      # node-local caches of compute-node jobs
                                                    # ('' -> the job's $TMPDIR, else /tmp)
      escalate: {runtime: 1.5, mem_mb: 1.5}         # factor per retry (attempt 2, 3, ...)
      max: {runtime: 2880, mem_mb: 480000, cpus_per_task: 64, gpu: 8}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
                  r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")

DEFAULTS: dict[str, Any] = {
    "account": "",
    "partitions": {"gpu": "h100", "cpu": "cpu"},
    "gpu_model": "",
    "use_gpus": True,
    "scratch": "",
    "hf_cache": "~/.cache/huggingface",
    "node_scratch": "",
    "escalate": {"runtime": 1.5, "mem_mb": 1.5},
    "max": {},
    "command_timeout_s": 30,
    "internet": {"partition": "", "gpu_partition": ""},
    "gpu_driver": "",
}


def expand(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR:-default}``/``${VAR}``/``$VAR`` (unset: default or ''), recursively."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m.group("name") or m.group("bare")
        got = env.get(name, "")
        if got:
            return got
        return expand(m.group("default") or "", env)

    out = _VAR.sub(sub, value)
    return os.path.expanduser(out) if out.startswith("~") else out


def cluster_settings(config: dict[str, Any],
                     environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``config['cluster']`` merged over :data:`DEFAULTS`, environment variables expanded."""
    raw = config.get("cluster") or {}
    merged: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        val = raw.get(key, default)
        if isinstance(default, dict) and isinstance(val, dict):
            val = {**default, **val}
        merged[key] = val
    for key, val in raw.items():
        merged.setdefault(key, val)
    out = expand(merged, environ)
    if isinstance(out["use_gpus"], str):
        out["use_gpus"] = out["use_gpus"].strip().lower() not in ("0", "false", "no", "off", "")
    return out


def partition(settings: dict[str, Any], name: str | None) -> str | None:
    """A partition role (``gpu``/``cpu``, keys of ``cluster.partitions``) -> its real name."""
    if not name:
        return None
    return settings["partitions"].get(name, name) or None


def job_environment(config: dict[str, Any],
                    environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables every job needs: HF cache, scratch and the container bind list.

    Set in the submitting process (``sbatch --export=ALL`` passes them on, apptainer passes the
    host environment into the container), so the binds are defined once, in ``cluster:``.
    ``APPTAINER_BIND`` keeps any binds already set and adds the scratch and HF cache directories
    that exist.
    """
    env = dict(os.environ if environ is None else environ)
    s = cluster_settings(config, env)
    out: dict[str, str] = {}
    binds = [b for b in env.get("APPTAINER_BIND", "").split(",") if b]
    if s["hf_cache"]:
        out["HF_HOME"] = s["hf_cache"]
    if s["scratch"]:
        out["PREFBIAS_SCRATCH"] = s["scratch"]
    for path in (s["scratch"], s["hf_cache"]):
        if path and os.path.isdir(path) and not any(b.split(":")[0] == path for b in binds):
            binds.append(path)
    if binds:
        out["APPTAINER_BIND"] = ",".join(binds)
    return out


def apply_job_environment(config: dict[str, Any]) -> dict[str, str]:
    """Put :func:`job_environment` into ``os.environ`` (call from the Snakefile); returns it."""
    env = job_environment(config)
    os.environ.update(env)
    return env


#: a compute node has no internet: every Hugging Face library reads local files only
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
#: compile and dataset caches of a compute-node job -> subdirectory of the node-local scratch
NODE_CACHES = {"VLLM_CACHE_ROOT": "vllm", "TRITON_CACHE_DIR": "triton",
               "TORCHINDUCTOR_CACHE_DIR": "torchinductor", "HF_DATASETS_CACHE": "hf_datasets",
               "CUDA_CACHE_PATH": "cuda"}


def node_job_environment(config: dict[str, Any], gpus: int,
                         environ: dict[str, str] | None = None, *,
                         cwd: str | Path | None = None) -> dict[str, str]:
    """Environment of a job that runs on a compute node (every job that is not a localrule), set
    in the job itself (:func:`prefbias.hpc.hook.on_workflow_load`, Snakemake's remote mode):

    * :data:`OFFLINE`: GPU nodes have no internet, and every model and data set is a local file;
    * ``PREFBIAS_REQUIRE_GPUS``: ``gpus``, the most GPUs any of the job's rules requested
      (:func:`prefbias.hpc.resources.job_gpus`), so the no-CPU-fallback check
      (:mod:`prefbias.hpc.gpu`) does not depend on the Slurm GPU variables reaching the job step
      (the jobstep executor's nested ``srun`` drops them);
    * :data:`NODE_CACHES` under ``<cluster.node_scratch>/prefbias-cache-<uid>`` (default
      ``$TMPDIR`` of the job, else /tmp), never in the repository (the jobs' working directory); the
      directory is created and added to ``APPTAINER_BIND``. ``HF_HOME`` stays
      ``cluster.hf_cache`` (:func:`job_environment`).
    """
    env = dict(os.environ if environ is None else environ)
    s = cluster_settings(config, env)
    out = dict(OFFLINE)
    if gpus > 0:
        out["PREFBIAS_REQUIRE_GPUS"] = str(gpus)
    scratch = Path(s["node_scratch"] or env.get("TMPDIR") or "/tmp").expanduser().resolve()
    root = scratch / f"prefbias-cache-{os.getuid()}"
    work = Path(cwd or os.getcwd()).resolve()
    if root == work or work in root.parents:
        raise ValueError(f"cluster.node_scratch ({scratch}) is inside the working "
                         f"directory {work}: caches must go to node-local scratch")
    for var, sub in NODE_CACHES.items():
        out[var] = str(root / sub)
    binds = [b for b in env.get("APPTAINER_BIND", "").split(",") if b]
    if not any(b.split(":")[0] == str(root) for b in binds):
        out["APPTAINER_BIND"] = ",".join([*binds, str(root)])
    return out


def apply_node_job_environment(config: dict[str, Any], gpus: int) -> dict[str, str]:
    """Put :func:`node_job_environment` into ``os.environ`` (creating the cache root)."""
    env = node_job_environment(config, gpus)
    Path(env["VLLM_CACHE_ROOT"]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env
