"""No silent CPU fallback: a job that was given GPUs must see a CUDA device.

How a job knows its rule requested GPUs: Slurm exports the allocation into the job's
environment (``SLURM_GPUS``/``SLURM_GPUS_ON_NODE``/``SLURM_JOB_GPUS``/``SLURM_STEP_GPUS``/
``SLURM_GPUS_PER_NODE``/``SLURM_GPUS_PER_TASK``, set from the ``gpu`` resource the rule passes to
sbatch via the executor plugin; Apptainer passes the host environment into the container), and
``PREFBIAS_REQUIRE_GPUS=<n>`` asks for the same check explicitly (other launchers, tests). When
any of them is set and non-zero but ``torch.cuda.is_available()`` is false — a CUDA build of
torch newer than the node's driver, ``apptainer`` without ``--nv``, ``CUDA_VISIBLE_DEVICES``
emptied — :func:`require_cuda_if_allocated` stops the command at once (``prefbias`` calls it
before any subcommand) instead of letting transformers/accelerate train on the CPU for days.

The images' torch is a CUDA build with a minimum NVIDIA driver: each ``containers/*.def``
documents it in ``%labels`` (``org.prefbias.torch``, ``org.prefbias.cuda``,
``org.prefbias.min_nvidia_driver``), :func:`def_labels` reads them, and ``prefbias preflight``
compares them with the GPU nodes' driver (:func:`driver_problems`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

#: Slurm's job/step GPU variables, then our explicit one
GPU_VARS = ("PREFBIAS_REQUIRE_GPUS", "SLURM_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS",
            "SLURM_STEP_GPUS", "SLURM_GPUS_PER_NODE", "SLURM_GPUS_PER_TASK")
#: CUDA major version of a torch build -> the minimum Linux NVIDIA driver (CUDA minor-version
#: compatibility: CUDA 13.x needs >= 580, 12.x >= 525, 11.x >= 450; NVIDIA's release notes)
MIN_DRIVER = {13: 580, 12: 525, 11: 450}
LABEL_PREFIX = "org.prefbias."
#: torch release -> CUDA version of its default Linux wheel on PyPI (the wheels' own metadata)
TORCH_PYPI_CUDA = {"2.13": "13.0", "2.14": "13.0"}


class GpuMissing(RuntimeError):
    pass


def allocated_gpus(environ: dict[str, str] | None = None) -> str | None:
    """``"VAR=value"`` of the first variable saying this job has GPUs, else None.

    ``SLURM_JOB_GPUS``/``SLURM_STEP_GPUS`` list GPU *indices* (``"0"`` is GPU 0): any value
    counts. The others are counts, optionally typed (``h100:2``, ``gpu:h100:2``): zero or
    ``none`` means no GPU."""
    env = os.environ if environ is None else environ
    for var in GPU_VARS:
        val = (env.get(var) or "").strip()
        if not val:
            continue
        if var in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
            return f"{var}={val}"
        if val.lower() in ("none", "n/a"):
            continue
        counts = [int(c) for c in re.findall(r"(?:^|[:,])(\d+)(?=$|[,(])", val)]
        if counts and not any(counts):
            continue
        return f"{var}={val}"
    return None


def driver_version() -> str | None:
    """The NVIDIA driver version nvidia-smi reports here, None without nvidia-smi/GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip() if out.returncode == 0 and first else None


def min_driver_for(cuda: str | None) -> int | None:
    if not cuda:
        return None
    return MIN_DRIVER.get(int(str(cuda).split(".")[0]))


def require_cuda_if_allocated(environ: dict[str, str] | None = None,
                              cuda_available=None) -> None:
    """Raise :class:`GpuMissing` when the job was given GPUs but torch sees no CUDA device.
    ``cuda_available`` (tests) replaces ``torch.cuda.is_available``."""
    env = os.environ if environ is None else environ
    why = allocated_gpus(env)
    if why is None:
        return
    torch_version = cuda = None
    if cuda_available is None:
        import torch

        torch_version, cuda = torch.__version__, torch.version.cuda
        cuda_available = torch.cuda.is_available
    if cuda_available():
        return
    driver = driver_version()
    need = min_driver_for(cuda)
    hints = []
    if cuda is None and torch_version:
        hints.append(f"torch {torch_version} is a CPU-only build: use the images' CUDA torch")
    if need and driver and int(driver.split(".")[0]) < need:
        hints.append(f"torch {torch_version} is built for CUDA {cuda}, which needs an NVIDIA "
                     f"driver >= {need}; this node has {driver}: use nodes with a newer driver "
                     "or images built with an older CUDA torch")
    elif driver is None:
        hints.append("nvidia-smi is missing or found no GPU here: inside apptainer, run with "
                     "--nv (slurm/config.yaml apptainer-args)")
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1", "NoDevFiles"):
        hints.append(f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU")
    raise GpuMissing(f"this job was given GPUs ({why}) but torch sees no CUDA device "
                     f"(torch {torch_version or '?'}, CUDA build {cuda or 'none'}, driver "
                     f"{driver or 'unknown'}); refusing to run on the CPU. "
                     + " ".join(hints))


def def_labels(path: str | Path) -> dict[str, str]:
    """``%labels`` of an Apptainer definition file, ``org.prefbias.`` prefix stripped for ours."""
    out: dict[str, str] = {}
    section = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("%"):
            section = line.split()[0]
            continue
        if section == "%labels" and line.strip() and not line.strip().startswith("#"):
            key, _, val = line.strip().partition(" ")
            out[key.removeprefix(LABEL_PREFIX)] = val.strip()
    return out


def image_requirements(root: str | Path, images: list[str]) -> dict[str, dict[str, str]]:
    """``{image: {torch, cuda, min_nvidia_driver}}`` from containers/<image>.def."""
    out = {}
    for name in images:
        path = Path(root) / "containers" / f"{name}.def"
        if path.exists():
            out[name] = {k: v for k, v in def_labels(path).items()
                         if k in ("torch", "cuda", "min_nvidia_driver")}
    return out


def driver_problems(config: dict[str, Any], rules: list[str], root: str | Path = ".",
                    driver: str | None = None) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of the GPU nodes' driver against the images of the GPU rules.
    The driver is ``cluster.gpu_driver`` (``$PREFBIAS_GPU_DRIVER``), else ``nvidia-smi`` here
    (login nodes often have none: then a note says how to find it)."""
    from prefbias.hpc.needs import image_name
    from prefbias.hpc.resources import requested_gpus
    from prefbias.hpc.site import cluster_settings

    gpu_rules = [r for r in rules if requested_gpus(config, r)]
    if not gpu_rules:
        return [], []
    by_image: dict[str, list[str]] = {}
    for r in gpu_rules:
        by_image.setdefault(image_name(config, r), []).append(r)
    reqs = image_requirements(root, list(by_image))
    if not any(r.get("min_nvidia_driver") for r in reqs.values()):
        return [], []  # no image documents a driver (e.g. a test workflow without containers/)
    driver = driver or str(cluster_settings(config).get("gpu_driver") or "") or driver_version()
    if not driver:
        need = max((int(v.get("min_nvidia_driver", 0)) for v in reqs.values()), default=0)
        return [], [f"GPU driver of the compute nodes unknown (no cluster.gpu_driver / "
                    f"PREFBIAS_GPU_DRIVER, no nvidia-smi here): the images need >= {need}; "
                    "check with `srun -p <gpu partition> --gpus=1 nvidia-smi` and set "
                    "PREFBIAS_GPU_DRIVER"]
    major = int(driver.split(".")[0])
    problems = []
    for img, req in sorted(reqs.items()):
        need = int(req.get("min_nvidia_driver", 0))
        if major < need:
            problems.append(
                f"the GPU nodes' NVIDIA driver {driver} is older than {need}, which "
                f"containers/{img}.def needs (torch {req.get('torch')}, CUDA {req.get('cuda')}; "
                f"rules {', '.join(by_image[img])}): torch would see no GPU. Use nodes with a "
                "newer driver, or rebuild the image with a torch for an older CUDA")
    return problems, []
