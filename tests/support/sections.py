"""A config section as a job receives it, for tests that call the code without Snakemake."""

from __future__ import annotations

import copy
from typing import Any


def job_section(section: str, spec: dict[str, Any], group: str | None = None) -> dict[str, Any]:
    """``spec`` with the schema's defaults of config section ``section`` filled in, as
    prefbias.config.fill_defaults fills them where the config is loaded; with ``group``, the
    defaults of that sub-block (``dpo``: ``ultrafeedback`` | ``styles``) merged over it, as
    prefbias.plan.merge_dpo_group merges them."""
    from prefbias.config import fill_defaults
    from prefbias.plan import merge_dpo_group

    body = copy.deepcopy(spec)
    if group:
        body[group] = {}
    out = fill_defaults({section: body})[section]
    return merge_dpo_group(out, group) if group else out
