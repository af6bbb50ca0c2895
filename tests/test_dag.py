"""The tiny DAG as Snakemake sees it: every stage is wired; a change reruns only dependents."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.job_params import replanned, rule_counts

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
pytestmark = pytest.mark.dag


def _dry_run(*extra: str) -> dict[str, int]:
    # --forceall / --rerun-incomplete: the plan of a fresh clone, whatever a local demo left
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
           "--forceall", "--rerun-incomplete", "--configfile=configs/tiny.yaml", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) not in {"total", "job", "count"}:
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def full_plan():
    return _dry_run()


def test_whole_dag_covers_every_stage(full_plan):
    """The demo's stages; its random-weight stylized-dpo stand-ins are neither judged nor scored
    by the reward model (report.skip_random_stand_in_evals: those rules are covered with the
    switch off, test_random_stand_in_evals_are_not_planned)."""
    for rule in ["fetch_dataset", "build_tiny_model", "sft_data", "uf_prefs", "dpo_mix_prefs",
                 "saa", "sycophancy_data", "style_shard", "style_gather", "train_sft",
                 "ref_logps", "train_dpo", "train_orpo", "judge_check", "helm_run",
                 "helm_summarize", "sycophancy_answer", "sycophancy_ays", "table", "figure",
                 "freeze"]:
        assert full_plan.get(rule, 0) >= 1, f"rule {rule} is not in the demo DAG: {full_plan}"
    for rule in ["eval_prompts", "generate", "judge", "reward_winrate", "reward_winrate_pair",
                 "judge_agreement"]:
        assert rule not in full_plan, full_plan
    assert full_plan["train_dpo"] == 4  # UltraFeedback + three styles
    assert full_plan["train_orpo"] == 4  # two tiny instruct models x (aligned, aligned_saa)
    assert full_plan["helm_run"] == 6  # tiny helm.jobs: per_model, one helm-run per DPO/SFT/base
    assert full_plan["table"] == 11 and full_plan["figure"] == 6  # prefbias.plan.REPORT_ITEMS


def _rulegraph(*extra: str) -> dict[str, set[str]]:
    """rule -> rules that consume its outputs, from `snakemake --rulegraph`."""
    cmd = [sys.executable, "-m", "snakemake", "--rulegraph", "--configfile=configs/tiny.yaml",
           *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', proc.stdout, re.M))
    edges: dict[str, set[str]] = {n: set() for n in names.values()}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, re.M):
        edges[names[a]].add(names[b])
    return edges


def _descendants(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_judge_change_never_reruns_training_or_helm(tmp_path):
    """A judge-prompt edit re-runs the judge jobs (params trigger: their params hold the judge
    section, see test below) and only what consumes their outputs: tables, figures, freeze.
    Built with the paper's one HELM job per (model, scenario) (the tiny plan above has one per
    model), so both helm_run variants are parsed and wired."""
    off = _overlay(tmp_path, {"report": {"skip_random_stand_in_evals": False}})  # judged
    down = _descendants(_rulegraph("--config", "helm={jobs: per_scenario}", "--configfile",
                                   "configs/tiny.yaml", off), "judge")
    assert "table" in down and "figure" in down  # the judge table and Figure 3
    for rule in down:
        assert not rule.startswith(("train_", "ref_logps", "helm_", "style_", "generate")), down


def test_only_judge_rules_carry_the_judge_prompt(tiny_config):
    """The judge section (prompt included) reaches job params only in the judge rules; other
    rules may read single keys that do not hold the prompt (report: the dimension names)."""
    assert tiny_config["judge"]["prompt"].strip()
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        if 'spec("judge")' in text or re.search(r'config\["judge"\](?!\[)', text):
            # evaluate.smk: the judge rules; common.smk: judge_block, the judge model's
            # directory as an input (its params come from prefbias.jobspec)
            assert smk.name in ("evaluate.smk", "common.smk"), smk.name
        for key in re.findall(r'config\["judge"\]\["(\w+)"\]', text):
            assert key != "prompt" or smk.name == "evaluate.smk", (smk.name, key)


# What Snakemake's params rerun-trigger replans when only the config changes (issues 21, 23):
# every job's params as Snakemake records them (tests/support/job_params.py), compared between
# two configs; a job whose params differ reruns, and so does everything downstream of it.
def _job_params(*args: str) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-m", "tests.support.job_params", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


TINY = ("config.yaml", "configs/tiny.yaml")


@pytest.fixture(scope="module")
def tiny_params():
    return _job_params(*TINY)


@pytest.fixture(scope="module")
def evaluated_params(tmp_path_factory):
    """The demo with its random-weight stand-ins judged and scored (the switch off)."""
    return _job_params(*TINY, _overlay(tmp_path_factory.mktemp("off"),
                                       {"report": {"skip_random_stand_in_evals": False}}))


def test_random_stand_in_evals_are_not_planned(tiny_params, evaluated_params):
    """report.skip_random_stand_in_evals (configs/tiny.yaml: true; issue 21.6): the random-weight
    stylized-dpo chain (base, SFT, four DPO models) plans no generations, judge or reward
    win-rate jobs (nor the prompt sets and the reward model only they read); every other job
    keeps its params; only the items whose rows now read "not run" (Table 3, its pairs, the
    judge table, Figure 3) and the resolved config change."""
    assert set(tiny_params) < set(evaluated_params)
    dropped = set(evaluated_params) - set(tiny_params)
    assert rule_counts(dropped) == {"generate": 12, "judge": 6, "reward_winrate": 6,
                                    "reward_winrate_pair": 4, "eval_prompts": 2,
                                    "build_tiny_model": 1}, sorted(dropped)
    assert "build_tiny_model work/tiny/models/base/nemotron-70b-reward" in dropped
    changed = {k for k in tiny_params
               if tiny_params[k]["params"] != evaluated_params[k]["params"]}
    assert sorted(changed) == ["figure results/tiny/figures/stylized_figure3.png",
                               "resolved_config work/tiny/resolved_config.json",
                               "table results/tiny/tables/judge_scores.csv",
                               "table results/tiny/tables/table3.csv",
                               "table results/tiny/tables/table3_pairs.csv"]


def _overlay(tmp_path: Path, overlay: dict) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(json.dumps(overlay))
    return str(path)


def test_a_key_written_at_its_default_replans_nothing(tiny_params, tmp_path):
    """Defaults are filled once where the config is loaded (prefbias.config.fill_defaults), so
    writing keys out at their schema defaults leaves every job's params as they were."""
    overlay = {"reward_winrate": {"tie_eps": 0.0, "scoring": "token0_logit"},
               "judge": {"top_logprobs": 20, "check_set": "judge_check"},
               "sft": {"long_prompts": "drop"}, "orpo": {"lora": {"dropout": 0.0}},
               "dpo": {"styles": {"cycle_mode": "chained"}},
               "sycophancy": {"grader": {"kind": "match"}}}
    after = _job_params(*TINY, _overlay(tmp_path, overlay))
    assert replanned(tiny_params, after) == set()


def test_a_changed_default_replans_exactly_the_jobs_that_read_it(evaluated_params, tmp_path):
    """A default changed in the schema reaches the params of the jobs that read the key (the
    reward win rates, and the resolved config the report and freeze record) and nothing else;
    downstream, only the tables that read those files and the report / freeze rerun. (The demo
    with its stand-ins scored: it plans no reward win rate otherwise.)"""
    off = _overlay(tmp_path, {"report": {"skip_random_stand_in_evals": False}})
    after = _job_params("--schema-default", "reward_winrate.tie_eps=0.1", *TINY, off)
    direct = {k.split()[0] for k, v in after.items()
              if v["params"] != evaluated_params[k]["params"]}
    assert direct == {"reward_winrate", "reward_winrate_pair", "resolved_config"}
    jobs = rule_counts(replanned(evaluated_params, after))
    # report_pages: the model cards carry the reward win rates (and read the resolved config)
    assert set(jobs) == {"reward_winrate", "reward_winrate_pair", "table", "resolved_config",
                         "report_pages", "snakemake_report", "freeze", "all"}, jobs
    assert jobs["table"] == 2  # Table 3 and its companion of further pairs


def test_renaming_a_model_retrains_nothing(tiny_params, tmp_path):
    """A model's display_name is a label: it reaches the report jobs (captions, row names),
    never fetch_model or anything trained or evaluated on the model (issue 23)."""
    overlay = {"models": {"smollm2-135m-instruct": {"display_name": "SmolLM2 (renamed)"}}}
    jobs = rule_counts(replanned(tiny_params, _job_params(*TINY, _overlay(tmp_path, overlay))))
    assert jobs and set(jobs) <= {"table", "figure", "resolved_config", "report_pages",
                                  "snakemake_report", "freeze", "all"}, jobs


def test_no_command_line_carries_the_whole_config():
    """The report and freeze read the resolved config from a file (rule resolved_config): a dry
    run prints no ~10 KB JSON of the whole config (its `cluster` section is nowhere else)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--cores", "1",
           "--configfile=configs/tiny.yaml", "results/tiny/MANIFEST.json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "prefbias freeze results/tiny --config-json work/tiny/resolved_config.json" in out
    assert '"cluster": {' not in out


def test_other_readings_overlay_plans_both_readings_in_one_dag(tiny_params):
    """configs/dpo-other-readings.yaml over the demo (docs/FIDELITY.md, DPO schedules): one DAG
    trains and evaluates both readings. Every job of the default reading keeps its params (a
    finished run reruns none of them); the other reading adds its models' jobs under ids of
    their own; only what gathers over models (tables, figures, the HELM summary, the resolved
    config) sees them, and the report items read them."""
    after = _job_params(*TINY, "configs/dpo-other-readings.yaml")
    assert set(tiny_params) <= set(after)
    changed = {k for k in tiny_params if after[k]["params"] != tiny_params[k]["params"]}
    assert rule_counts(changed) == {"table": 7, "figure": 2, "helm_summarize": 1,
                                    "resolved_config": 1}, sorted(changed)
    added = set(after) - set(tiny_params)
    # not judged or scored: random-weight stand-ins (report.skip_random_stand_in_evals)
    assert rule_counts(added) == {"train_dpo": 4, "helm_run": 4}, sorted(added)
    others = {"dpo-ultrafeedback-independent-s0": ("dpo-ultrafeedback-s0", "cycle_mode"),
              **{f"dpo-{s}-over-epochs-s0": (f"dpo-{s}-s0", "lr_schedule_over")
                 for s in ("authoritative", "sycophantic", "persuasive")}}
    trained = {k.rsplit("/", 1)[1] for k in after if k.startswith("train_dpo ")}
    assert trained == set(others) | {d for d, _ in others.values()}  # both id sets

    def spec(params: dict, model: str) -> dict:
        job = params[f"train_dpo work/tiny/models/trained/{model}"]["params"]
        (text,) = [p for p in job if p.startswith("'{\"batch_size\"")]
        return json.loads(text.strip("'"))

    for model, (default, key) in others.items():  # they differ exactly in the reading key
        a, b = spec(after, default), spec(after, model)
        assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {key}, model
        assert a == spec(tiny_params, default)
    # the report items: their rows (params) name both readings' models, their inputs are built
    # on them (Table 4 through the HELM summary; the judge items read no file of the demo's
    # random-weight models: report.skip_random_stand_in_evals)
    helm = " ".join(after["helm_summarize results/tiny/eval/helm/accuracy.csv"]["deps"])
    for item in ("table3", "table4", "judge_scores", "stylized_figure3"):
        kind = "figure" if "figure" in item else "table"
        job = after[f"{kind} results/tiny/{kind}s/{item}.{'png' if kind == 'figure' else 'csv'}"]
        deps = " ".join(job["deps"]) + (helm if item == "table4" else "")
        for model in [*others, *(d for d, _ in others.values())]:
            assert f'"id": "{model}"' in " ".join(job["params"]), (item, model)
            assert (model in deps) == (item in ("table3", "table4")), (item, model)
