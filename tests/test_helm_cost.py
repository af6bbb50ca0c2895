"""helm_run's Slurm runtime is arithmetic over HELM's run specs (issue 13.10), not a guess that
retries must rescue; the arithmetic's inputs (max_tokens, perturbations, choices) are checked
against crfm-helm 0.5.16's own run specs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from prefbias.evaluation import helm_env, helm_run
from prefbias.hpc import helm_cost
from prefbias.hpc.resources import ResourceError, resolve, rule_resources, runtime_problems

ROOT = Path(__file__).resolve().parents[1]


def test_the_arithmetic_for_the_paper_config(paper_config):
    helm = paper_config["helm"]
    assert helm["max_eval_instances"] == 1000
    cost = helm["cost"]
    nq = helm_cost.entry_costs(helm, "natural_qa")
    assert [(e["requests"], e["max_tokens"]) for e in nq] == [(5000, 300)]  # 1000 × (1 + 4)
    assert nq[0]["seconds"] == pytest.approx(5000 * (cost["request_s"] + 300 * cost["step_s"]))
    hs = helm_cost.entry_costs(helm, "hellaswag")  # unperturbed, as the paper ran it
    assert hs[0]["requests"] == 1000 * 1 * 4 and hs[0]["max_tokens"] == 0
    cfg = copy.deepcopy(helm)
    cfg["scenarios"]["hellaswag"] += ",data_augmentation=canonical"  # configs/helm-perturbed
    assert helm_cost.entry_costs(cfg, "hellaswag")[0]["requests"] == 1000 * 5 * 4
    mmlu = helm_cost.entry_costs(helm, "mmlu")
    assert len(mmlu) == 5 and all(e["instances"] < 1000 for e in mmlu)
    minutes = helm_cost.runtime_minutes(helm, ["natural_qa"])
    expected = cost["startup_min"] + cost["margin"] * nq[0]["seconds"] / 60
    assert minutes == int(-(-expected // 1))
    assert minutes > 240  # the old flat guess would have killed NQ's worst case


def test_each_helm_job_gets_the_runtime_of_its_own_work(paper_config):
    res = rule_resources(paper_config, "helm_run")
    per = {s: res["runtime"](wildcards=SimpleNamespace(scenario=s), attempt=1)
           for s in paper_config["helm"]["scenarios"]}
    for s, minutes in per.items():
        assert minutes == helm_cost.runtime_minutes(paper_config["helm"], [s])
    assert per["natural_qa"] > per["quac"] > per["boolq"] > per["hellaswag"] > per["mmlu"]
    # without wildcards (preflight, `prefbias resources`): the longest job
    assert resolve(paper_config, "helm_run")["runtime"] == max(per.values())
    # per_model: one job does every scenario
    cfg = copy.deepcopy(paper_config)
    cfg["helm"]["jobs"] = "per_model"
    total = helm_cost.runtime_minutes(cfg["helm"], list(per))
    assert resolve(cfg, "helm_run")["runtime"] == total
    # fewer output tokens, shorter jobs
    cfg["helm"]["num_output_tokens"] = 16
    assert resolve(cfg, "helm_run")["runtime"] < total


def test_a_hand_set_runtime_and_a_too_small_cap_are_refused(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["resources"]["helm_run"]["runtime"] = 240
    with pytest.raises(ResourceError, match="computed from its work"):
        resolve(cfg, "helm_run")
    cfg = copy.deepcopy(paper_config)
    assert runtime_problems(cfg, ["helm_run"]) == []
    cfg["cluster"]["max"]["runtime"] = 240
    problems = runtime_problems(cfg, ["helm_run"])
    assert len(problems) == 2 and "natural_qa" in problems[0] and "quac" in problems[1]


def test_inputs_match_helms_own_run_specs(paper_config):
    """max_tokens, perturbation count and (for HellaSwag) the method as crfm-helm builds them."""
    try:
        bin_dir = helm_env.helm_bin_dir({})
    except helm_env.HelmError as e:
        pytest.skip(str(e))
    helm = paper_config["helm"]
    code = (
        "import json, sys\n"
        "from prefbias.evaluation.helm_stage import _run_specs\n"
        "out = {}\n"
        "for scen, entry in json.loads(sys.argv[1]).items():\n"
        "    (rs,) = _run_specs(entry)\n"
        "    out[scen] = [rs.adapter_spec.max_tokens, rs.adapter_spec.method,\n"
        "                 len(rs.data_augmenter_spec.perturbation_specs)]\n"
        "print(json.dumps(out))\n")
    from prefbias.plan import scenario_entries

    entries = {s: scenario_entries({**helm, "mmlu_subjects": ["abstract_algebra"]}, s)[0]
               for s in helm["scenarios"]}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([str(bin_dir / "python"), "-c", code, json.dumps(entries)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for scen, (max_tokens, _method, n_perts) in got.items():
        assert helm_cost.MAX_TOKENS[scen] == max_tokens == helm_run.DEFAULT_MAX_TOKENS[scen]
        aug = "canonical" if "data_augmentation=canonical" in helm["scenarios"][scen] else None
        assert n_perts == helm_cost.PERTURBATIONS[aug], scen
    assert got["hellaswag"][1] == "multiple_choice_separate_original"
    assert helm_cost.CHOICES["hellaswag"] == 4  # HellaSwag has four endings per context
