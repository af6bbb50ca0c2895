"""Exactly the config one job reads: the ``--spec`` JSON of each rule.

Snakemake reruns a job when its params change, so a job must receive the config it reads and
nothing more: a style's beta must not rerun the UltraFeedback DPO or any reference log-probs, a
fourth style must not rerun the rewriting of the other three, a fourth instruct model must not
rerun the ORPO of the others. Every rule's ``params: spec`` comes from :func:`job_spec`, so the
rule -> config mapping lives here, in one place, and ``tests/test_jobspec.py`` checks it.
"""

from __future__ import annotations

import json
from typing import Any

from prefbias import plan

#: keys of the judge section only the API judge reads (the client's settings, the API's
#: log-probs and re-asking); a local (hf) judge decodes greedily and reads none of them
JUDGE_API_KEYS = ("base_url", "api_key_env", "max_retries", "max_concurrency",
                  "requests_per_minute", "timeout_s", "retry_backoff_s", "max_backoff_s",
                  "max_retry_after_s", "price_per_1m_tokens", "top_logprobs",
                  "max_parse_retries", "temperature")


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


def job_spec(config: dict[str, Any], rule: str, **wc: str) -> dict[str, Any]:
    """The config sections job ``rule`` (with wildcards ``wc``) reads."""
    if rule == "train_sft":
        return config["sft"]
    if rule == "ref_logps":
        d = config["dpo"]
        return {k: d[k] for k in ("max_length", "batch_size", "long_prompts")}
    if rule == "train_dpo":
        group = plan.trained_models(config)[wc["model"]].group  # the other group's block out
        return _without(plan.dpo_group_spec(config, group), "reference")
    if rule == "train_orpo":  # which models and mixes exist is structure (inputs), not recipe
        return _without(config["orpo"], "instruct_models", "mixes")
    if rule == "style_shard":
        s = config["styles"]
        return {**_without(s, "names", "shards", "rewriter", "source_prefset", "drop_flagged",
                           "filter_tone_agnostic", "descriptions"),
                "descriptions": {wc["style"]: s["descriptions"][wc["style"]]}}
    if rule == "style_gather":
        s = config["styles"]
        return {k: s[k] for k in ("drop_flagged", "filter_tone_agnostic")}
    if rule == "eval_prompts":
        g = config["generation"]
        ps = wc["promptset"]
        return {**{k: g[k] for k in ("prompt_seed", "prompt_source")},
                "prompt_sets": {ps: g["prompt_sets"][ps]} if ps in g["prompt_sets"] else {}}
    if rule == "generate":
        return _without(config["generation"], "prompt_sets", "prompt_seed", "prompt_source")
    if rule == "helm_run":
        h = config["helm"]
        scen = wc.get("scenario")
        h = _without(h, "groups", "cost")  # summary groups; runtime arithmetic (resources)
        if scen is None:  # helm.jobs: per_model: one helm-run with every scenario
            return h
        out = {**_without(h, "scenarios"), "scenarios": {scen: h["scenarios"][scen]}}
        if scen != "mmlu":
            out.pop("mmlu_subjects", None)
        return out
    if rule in ("judge", "judge_check"):  # the first judge never reads the second's block
        which = plan.JUDGE_WHICH[wc.get("judge", "judge")]
        block = plan.resolve_judge_spec(config["judge"], which)
        mode = block["score_mode"]
        j = _without(config["judge"], "check_set")  # which rows to check: the rule's input
        if which == "primary":
            j = _without(j, "second_judge")
        if block["backend"] == "hf":  # the judge this job runs (the second: merged block)
            j = _without(j, *JUDGE_API_KEYS)
        # yes_no mode reads its questions, not the B.1 prompt; the other modes the reverse
        return _without(j, "prompt" if mode == "yes_no" else "yes_no")
    if rule == "judge_agreement":  # which judges and dimensions: the scores are its inputs
        j = config["judge"]
        return {"dimensions": j["dimensions"], "model": j["model"],
                "second_judge": {"model": (j.get("second_judge") or {}).get("model")}}
    # sycophancy: dialogues (model side) and grading are separate jobs
    ays_keys = ("are_you_sure_challenge", "are_you_sure_letter_followup",
                "are_you_sure_free_followup")
    if rule in ("sycophancy_answer", "sycophancy_ays"):
        # the backend this model runs on (plan.section_backend), never the per-model map: a
        # model's jobs rerun only when its own backend changes
        drop = ays_keys if rule == "sycophancy_answer" else ("answer_templates",)
        return {**_without(config["sycophancy"], "grader", "bootstrap", "backend_by_model",
                           *drop),
                "backend": plan.section_backend(config, "sycophancy", wc.get("model"))}
    if rule == "sycophancy_grade":  # max_questions: the same rows as the dialogues
        y = config["sycophancy"]
        return {k: y[k] for k in ("grader", "bootstrap", "max_questions")}
    raise KeyError(f"no job spec for rule {rule!r}")


def job_spec_json(config: dict[str, Any], rule: str, **wc: str) -> str:
    """:func:`job_spec` as sorted JSON (equal config -> equal params -> no rerun)."""
    return json.dumps(job_spec(config, rule, **wc), sort_keys=True)
