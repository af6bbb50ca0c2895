"""Exactly the config one job reads: the ``--spec`` JSON of each rule.

Snakemake reruns a job when its params change, so a job must receive the config it reads and
nothing more: a style's beta must not rerun the UltraFeedback DPO or any reference log-probs, a
fourth style must not rerun the rewriting of the other three, a fourth instruct model must not
rerun the ORPO of the others. Every rule's ``params: spec`` comes from :func:`job_spec`, which
reads the rule's entry in :mod:`prefbias.rule_table` (``reads``); ``tests/test_jobspec.py``
checks the mapping.
"""

from __future__ import annotations

import json
from typing import Any

from prefbias.rule_table import RULES, Reads


def job_spec(config: dict[str, Any], rule: str, **wc: str) -> dict[str, Any]:
    """The config sections job ``rule`` (with wildcards ``wc``) reads."""
    reads = RULES[rule].reads if rule in RULES else None
    if reads is None:
        raise KeyError(f"no job spec for rule {rule!r}")
    return reads.spec(config, **wc) if isinstance(reads, Reads) else reads(config, **wc)


def job_spec_json(config: dict[str, Any], rule: str, **wc: str) -> str:
    """:func:`job_spec` as sorted JSON (equal config -> equal params -> no rerun)."""
    return json.dumps(job_spec(config, rule, **wc), sort_keys=True)
