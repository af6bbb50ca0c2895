"""How long one HELM job takes: arithmetic from the run specs, not a guess (docs/HPC.md).

The local HELM client (:mod:`prefbias.evaluation.helm_client`) serves one request at a time
(``helm-run`` sends them one by one). A (model, scenario) job therefore costs::

    minutes = startup_min + margin * sum over run entries of
              requests * (request_s + max_tokens * step_s) / 60

    requests   = eval instances * variants * choices
    instances  = min(helm.max_eval_instances, instances in HELM's eval splits (valid + test))
    variants   = 1 + perturbations of data_augmentation (canonical: mild_mix, dialect, gender,
                 person_name -> 5; HELM skips a perturbed copy that did not change, so <= 5)
    choices    = 4 for HellaSwag's multiple_choice_separate_original (one scoring request per
                 ending), else 1
    max_tokens = HELM 0.5.16's run-spec value (boolq 5, mmlu 1, natural_qa 300, quac 100,
                 hellaswag 0 = log-prob only), capped by helm.num_output_tokens

Every generation is charged its full ``max_tokens``: the stop sequence ``"\\n"`` usually ends it
far earlier, but a stylized model that rambles does not stop, so the bound is what the job must
survive without a retry. ``request_s`` (prompt forward with up to ~2k tokens of in-context
examples, tokenisation, HELM's adapter/metrics and its sqlite cache per request) and ``step_s``
(one greedy decoding step of a 0.5B model, batch 1, HF ``generate`` — launch-bound, not
FLOP-bound on an H100) come from config ``helm.cost``; each job records its real wall time
(``wall_s`` in the stats file, ``benchmarks/helm_run/*.tsv``) to recalibrate them.
"""

from __future__ import annotations

import math
from typing import Any

from prefbias.plan import scenario_entries

#: HELM 0.5.16 max_tokens per scenario (same as prefbias.evaluation.helm_run.DEFAULT_MAX_TOKENS)
MAX_TOKENS = {"boolq": 5, "mmlu": 1, "natural_qa": 300, "quac": 100, "hellaswag": 0}
#: scoring requests per instance (multiple_choice_separate_*: one per answer choice)
CHOICES = {"hellaswag": 4}
#: perturbations per data_augmentation value (HELM run_expander: canonical = robustness
#: mild_mix + fairness dialect, gender, person_name)
PERTURBATIONS = {"canonical": 4, "robustness": 1, "fairness": 3, None: 0}
#: MMLU eval instances (HELM evaluates valid + test) of the subjects HELM core uses
MMLU_EVAL = {"abstract_algebra": 111, "college_chemistry": 108, "computer_security": 111,
             "econometrics": 126, "us_foreign_policy": 111}
DEFAULT_COST = {"request_s": 0.06, "step_s": 0.025, "startup_min": 10, "margin": 1.2}


def _augmentation(template: str) -> str | None:
    for part in template.split(":", 1)[-1].split(","):
        if part.startswith("data_augmentation="):
            return part.split("=", 1)[1]
    return None


def entry_costs(helm: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    """Per run entry of ``scenario``: instances, requests, max_tokens, seconds."""
    cost = {**DEFAULT_COST, **(helm.get("cost") or {})}
    template = helm["scenarios"][scenario]
    cap = helm.get("num_output_tokens")
    max_tokens = MAX_TOKENS[scenario] if cap is None else min(int(cap), MAX_TOKENS[scenario])
    aug = _augmentation(template)
    if aug not in PERTURBATIONS:
        raise ValueError(f"helm.scenarios.{scenario}: unknown data_augmentation {aug!r} "
                         f"(known: {', '.join(str(k) for k in PERTURBATIONS if k)})")
    variants = 1 + PERTURBATIONS[aug]
    n_max = int(helm["max_eval_instances"])
    subjects = helm["mmlu_subjects"] if "{subject}" in template else [None]
    entries = scenario_entries(helm, scenario)
    out = []
    for subject, entry in zip(subjects, entries, strict=True):
        instances = min(n_max, MMLU_EVAL.get(subject, n_max)) if subject else n_max
        requests = instances * variants * CHOICES.get(scenario, 1)
        seconds = requests * (float(cost["request_s"]) + max_tokens * float(cost["step_s"]))
        out.append({"entry": entry,
                    "instances": instances, "variants": variants, "requests": requests,
                    "max_tokens": max_tokens, "seconds": seconds})
    return out


def runtime_minutes(helm: dict[str, Any], scenarios: list[str]) -> int:
    """Slurm runtime (minutes) of one helm-run over ``scenarios`` (one model)."""
    cost = {**DEFAULT_COST, **(helm.get("cost") or {})}
    seconds = sum(e["seconds"] for s in scenarios for e in entry_costs(helm, s))
    return int(math.ceil(float(cost["startup_min"]) + float(cost["margin"]) * seconds / 60))


def job_scenarios(helm: dict[str, Any], scenario: str | None = None) -> list[list[str]]:
    """The scenario lists of helm_run jobs: per_model -> one job with all; per_scenario -> one
    per scenario (or just ``scenario``)."""
    scenarios = list(helm["scenarios"])
    if helm.get("jobs") == "per_model":
        return [scenarios]
    return [[scenario]] if scenario else [[s] for s in scenarios]
