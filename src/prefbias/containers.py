"""Whether this process runs inside one of the project's containers (``containers/*.def``).

Read by the vLLM backend (which python runs its worker), the HELM environment lookup and the
freeze's provenance; kept in this dependency-free module so none of them imports another.
"""

from __future__ import annotations

import os
from pathlib import Path

#: set by Apptainer/Singularity inside every container it runs
CONTAINER_VARS = ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER")


def in_container(environ: dict[str, str] | None = None, root: str | Path = "/") -> bool:
    """True inside an Apptainer/Singularity container (``$APPTAINER_CONTAINER``,
    ``/.singularity.d``): the images of containers/*.def. A Docker container (``/.dockerenv``,
    e.g. a dev box) is not one of ours: it keeps the ``.venv-helm`` lookup."""
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in CONTAINER_VARS):
        return True
    return (Path(root) / ".singularity.d").is_dir()
