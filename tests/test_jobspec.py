"""Each job's --spec holds exactly the config it reads (prefbias.jobspec), so a single config
edit changes the params - and so reruns - only of the jobs that read what changed (issue 16).
This is where rerun precision is tested; tests/test_demo.py dry-runs one edit (the judge's) on a
finished demo, end to end."""

from __future__ import annotations

import copy

import pytest

from prefbias import plan
from prefbias.jobspec import job_spec, job_spec_json


def _jobs(config):
    """(rule, wildcards) of every job that takes a --spec from prefbias.jobspec."""
    jobs = [("train_sft", {"model": f"sft-s{s}"}) for s in config["seeds"]]
    jobs += [("train_dpo" if m.kind == "dpo" else "train_orpo", {"model": mid})
             for mid, m in plan.trained_models(config).items() if m.kind in ("dpo", "orpo")]
    jobs += [("ref_logps", {"refmodel": "sft-s0", "prefset": p, "split": "train"})
             for p in sorted(plan.prefsets(config)) if p.startswith("ultrafeedback")]
    jobs += [(r, {"style": s}) for s in config["styles"]["names"]
             for r in ("style_shard", "style_gather")]
    jobs += [("eval_prompts", {"promptset": p}) for p in config["generation"]["prompt_sets"]]
    jobs += [("generate", {"model": "sft-s0", "promptset": "judge"})]
    jobs += [("judge", {"model": "sft-s0", "judge": "judge"}), ("judge_check", {}),
             ("judge_agreement", {})]
    jobs += [("helm_run", {"model": "sft-s0", "scenario": s}) for s in config["helm"]["scenarios"]]
    jobs += [("sycophancy_answer", {"model": "gemma-7b-it"}),
             ("sycophancy_ays", {"model": "gemma-7b-it"})]
    return jobs


def _changed(config, edit):
    new = copy.deepcopy(config)
    edit(new)
    before = {(r, tuple(sorted(w.items()))): job_spec_json(config, r, **w)
              for r, w in _jobs(config)}
    changed = set()
    for r, w in _jobs(new):
        key = (r, tuple(sorted(w.items())))
        if key in before and before[key] != job_spec_json(new, r, **w):
            changed.add((r, "/".join(w.values())))
    return changed


def _add_style(c):
    c["styles"]["names"].append("formal")
    c["styles"]["descriptions"]["formal"] = "a formal register."


EDITS = {
    # a style's beta: the three style DPO runs, never the UltraFeedback DPO or reference log-probs
    "styles.beta": (lambda c: c["dpo"]["styles"].__setitem__("beta", 0.02),
                    {("train_dpo", "dpo-authoritative-s0"), ("train_dpo", "dpo-sycophantic-s0"),
                     ("train_dpo", "dpo-persuasive-s0")}),
    # a fourth style: no existing job changes (its own new jobs are added by the plan)
    "new style": (_add_style, set()),
    # one HELM scenario's run spec: that scenario's jobs only
    "helm.scenarios.boolq": (
        lambda c: c["helm"]["scenarios"].__setitem__("boolq", "boolq:data_augmentation=none"),
        {("helm_run", "sft-s0/boolq")}),
    # HELM's runtime arithmetic sets Slurm resources only: no HELM job reruns
    "helm.cost": (lambda c: c["helm"].setdefault("cost", {}).__setitem__("step_s", 1.0), set()),
    # a fourth instruct model: no existing ORPO run changes
    "new instruct model": (lambda c: c["orpo"]["instruct_models"].append("qwen2.5-0.5b"), set()),
    # a second seed: no seed-0 job changes
    "seeds": (lambda c: c.__setitem__("seeds", [0, 1]), set()),
    # the demo judges with yes/no questions: the B.1 prompt it does not read changes nothing ...
    "judge.prompt (yes_no mode)": (
        lambda c: c["judge"].__setitem__("prompt", c["judge"]["prompt"] + "\nBe strict."), set()),
    # ... and its questions rerun the judge
    "judge.yes_no.questions": (
        lambda c: c["judge"]["yes_no"]["questions"].__setitem__("relevance", "On topic?"),
        {("judge", "sft-s0/judge"), ("judge_check", "")}),
    # the dimensions are read by every judge job and by the agreement of the two judges
    "judge.dimensions": (
        lambda c: c["judge"]["dimensions"].append("clarity"),
        {("judge", "sft-s0/judge"), ("judge_check", ""), ("judge_agreement", "")}),
    # the demo's local (hf) judge reads no API setting
    "judge.max_retries (hf judge)": (lambda c: c["judge"].__setitem__("max_retries", 1), set()),
    "judge.top_logprobs (hf judge)": (lambda c: c["judge"].__setitem__("top_logprobs", 5), set()),
    # which rows the judge check reads is its input (the dataset file), not its params
    "judge.check_set": (lambda c: c["judge"].__setitem__("check_set", "bct"), set()),
    # the Are-You-Sure challenge: only the Are-You-Sure evaluations
    "sycophancy.are_you_sure_challenge": (
        lambda c: c["sycophancy"].__setitem__("are_you_sure_challenge", "Really?"),
        {("sycophancy_ays", "gemma-7b-it")}),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_single_edit_changes_only_its_jobs(tiny_config, name):
    config = copy.deepcopy(tiny_config)
    config["helm"]["jobs"] = "per_scenario"
    edit, expected = EDITS[name]
    assert _changed(config, edit) == expected


def test_dpo_spec_merges_only_its_group(paper_config):
    styles = job_spec(paper_config, "train_dpo", model="dpo-persuasive-s0")
    uf = job_spec(paper_config, "train_dpo", model="dpo-ultrafeedback-s0")
    assert styles["beta"] == 0.0075 and styles["max_steps"] == 100
    assert uf["beta"] == 0.1 and uf["cycles"] == 2
    for spec in (styles, uf):
        assert "styles" not in spec and "ultrafeedback" not in spec
        assert spec["optimizer"]["name"] == "rmsprop" and spec["batch_size"] == 4


def test_style_shard_reads_only_its_description(paper_config):
    spec = job_spec(paper_config, "style_shard", style="sycophantic")
    assert list(spec["descriptions"]) == ["sycophantic"]
    assert "names" not in spec and "shards" not in spec


def test_unknown_rule_is_an_error(paper_config):
    with pytest.raises(KeyError, match="no job spec"):
        job_spec(paper_config, "nope")


def _sycophancy_specs(config):
    return {(r, m): job_spec_json(config, r, model=m) for m in plan.sycophancy_ids(config)
            for r in ("sycophancy_answer", "sycophancy_ays", "sycophancy_grade")}


def test_per_model_backend_reruns_only_that_models_dialogues(tiny_config):
    """sycophancy.backend_by_model: a model's dialogue jobs carry the backend they run on
    (plan.section_backend), so moving SmolLM2 (and the ORPO models trained from it) to vLLM
    reruns their dialogues only - not the Gemma stand-ins', not any grading."""
    config = copy.deepcopy(tiny_config)
    config["sycophancy"]["backend_by_model"] = {}
    assert config["sycophancy"]["backend"] == "hf"
    new = copy.deepcopy(config)
    new["sycophancy"]["backend_by_model"] = {"smollm2-135m-instruct": "vllm"}
    before, after = _sycophancy_specs(config), _sycophancy_specs(new)
    smol = {m for m in plan.sycophancy_ids(config) if "smollm2" in m}
    assert len(smol) == 3
    assert {k for k in before if before[k] != after[k]} == {
        (r, m) for m in smol for r in ("sycophancy_answer", "sycophancy_ays")}
    for m in plan.sycophancy_ids(config):
        for r in ("sycophancy_answer", "sycophancy_ays"):
            spec = job_spec(new, r, model=m)
            assert spec["backend"] == ("vllm" if m in smol else "hf")
            assert "backend_by_model" not in spec
