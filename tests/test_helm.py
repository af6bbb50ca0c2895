"""HELM wiring: prod_env, cache key, run entries, stats extraction, ECE, summary tables, and a real
crfm-helm smoke run on the fixtures with a tiny model (marked ``helm``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from prefbias.evaluation import helm_env, helm_run, helm_summary

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "helm"
HELM_BIN = Path(os.environ.get("PREFBIAS_HELM_BIN", ROOT / ".venv-helm" / "bin"))


def _fake_model(path: Path, weights: bytes = b"w1") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2",
                                                  "max_position_embeddings": 512}))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (path / "model.safetensors").write_bytes(weights)
    return path


# ----------------------------------------------------------------------------- prod_env / cache
def test_prod_env_contents(tmp_path):
    model = _fake_model(tmp_path / "m")
    name = helm_env.helm_model_name("sft-s0", model)
    paths = helm_env.write_prod_env(tmp_path / "env", model_name=name, model_dir=model,
                                    apply_chat_template=False)
    dep = yaml.safe_load(paths["model_deployments.yaml"].read_text())["model_deployments"][0]
    assert dep["name"] == dep["model_name"] == dep["tokenizer_name"] == name
    assert dep["client_spec"]["class_name"] == helm_env.CLIENT_CLASS
    assert dep["client_spec"]["args"] == {"pretrained_model_name_or_path": str(model.resolve()),
                                          "apply_chat_template": False}
    assert dep["max_sequence_length"] == 512
    meta = yaml.safe_load(paths["model_metadata.yaml"].read_text())["models"][0]
    assert meta["name"] == name
    assert isinstance(meta["release_date"], dt.date)  # a real YAML date, not a string
    assert "FULL_FUNCTIONALITY_TEXT_MODEL_TAG" in meta["tags"]
    tok = yaml.safe_load(paths["tokenizer_configs.yaml"].read_text())["tokenizer_configs"][0]
    assert tok["name"] == name and tok["end_of_text_token"] == "<|im_end|>"
    assert tok["tokenizer_spec"]["args"]["pretrained_model_name_or_path"] == str(model.resolve())
    paths = helm_env.write_prod_env(tmp_path / "env", model_name=name, model_dir=model,
                                    apply_chat_template=True)
    dep = yaml.safe_load(paths["model_deployments.yaml"].read_text())["model_deployments"][0]
    assert dep["client_spec"]["args"]["apply_chat_template"] is True


def test_model_name_carries_weights_hash(tmp_path):
    a = _fake_model(tmp_path / "a", b"weights-1")
    b = _fake_model(tmp_path / "b", b"weights-2")
    c = _fake_model(tmp_path / "c", b"weights-1")
    (c / "prefbias_model.json").write_text("{}")  # provenance files do not change the hash
    na, nb, nc = (helm_env.helm_model_name("dpo-x-s0", p) for p in (a, b, c))
    assert na.startswith("local/dpo-x-s0-") and len(na.rsplit("-", 1)[1]) == 12
    assert na != nb  # retrained checkpoint -> new HELM model name -> no stale cache hits
    assert na == nc
    assert helm_env.weights_hash(a) in na


def test_run_entries_from_config(tiny_config, paper_config):
    spec = dict(paper_config["helm"])
    entries = helm_run.run_entries(spec, "mmlu", "local/m-abc")
    # the paper's protocol: MMLU and HellaSwag unperturbed (Tables 7-8), the others perturbed
    assert entries == [f"mmlu:subject={s},model=local/m-abc" for s in spec["mmlu_subjects"]]
    assert "data_augmentation" not in helm_run.run_entries(spec, "hellaswag", "local/m")[0]
    assert helm_run.run_entries(spec, "boolq", "local/m") == [
        "boolq:data_augmentation=canonical,model=local/m"]
    tiny = tiny_config["helm"]
    # num_output_tokens only lowers HELM's per-scenario max_tokens (never MMLU's 1 or HellaSwag's 0)
    assert helm_run.run_entries(tiny, "natural_qa", "local/m")[0].endswith(
        "model=local/m,num_output_tokens=8")
    assert "num_output_tokens" not in helm_run.run_entries(tiny, "mmlu", "local/m")[0]
    assert "num_output_tokens" not in helm_run.run_entries(tiny, "hellaswag", "local/m")[0]
    with pytest.raises(ValueError):
        helm_run.run_entries(tiny, "gsm", "local/m")


def test_joint_runs_are_split_by_scenario(paper_config, tmp_path):
    """helm.jobs: per_model puts every scenario in one helm-run; its run directories (HELM's
    own names, as made by 0.5.16) go back to their scenarios by run-spec function."""
    spec = dict(paper_config["helm"])
    m = "model=local_m-57662e4ec5e9"
    names = {
        "boolq": [f"boolq,data_augmentation=canonical:{m}"],
        "mmlu": [f"mmlu:subject={s},method=multiple_choice_joint,data_augmentation=canonical,{m}"
                 for s in ("abstract_algebra", "econometrics")],
        "natural_qa": [f"natural_qa:mode=closedbook,data_augmentation=canonical,{m},"
                       "num_output_tokens=8"],
        "quac": [f"quac,data_augmentation=canonical:{m}"],
        "hellaswag": ["commonsense:dataset=hellaswag,method=multiple_choice_separate_original,"
                      f"data_augmentation=canonical,{m}"],
    }
    runs = [tmp_path / n for ns in names.values() for n in ns]
    split = helm_run.runs_by_scenario(spec, list(names), sorted(runs))
    assert {k: sorted(p.name for p in v) for k, v in split.items()} == \
        {k: sorted(v) for k, v in names.items()}
    # a run of a scenario not asked for is an error, never silently dropped or misfiled
    with pytest.raises(helm_run.HelmError, match="belongs to none"):
        helm_run.runs_by_scenario(spec, ["boolq"], [tmp_path / names["quac"][0]])
    # two scenarios on one run-spec function cannot share a helm-run
    clash = {**spec, "scenarios": {**spec["scenarios"],
                                   "boolq": "commonsense:dataset=openbookqa"}}
    with pytest.raises(helm_run.HelmError, match="per_scenario"):
        helm_run.check_separable(clash, ["boolq", "hellaswag"])
    helm_run.check_separable(spec, list(spec["scenarios"]))


# ----------------------------------------------------------------------------- stats extraction
def _stat(name, split, mean, pert=None):
    mn = {"name": name, "split": split}
    if pert:
        mn["perturbation"] = {"name": pert, "robustness": pert == "robustness",
                              "fairness": pert == "fairness", "computed_on": "worst"}
    return {"name": mn, "count": 1, "sum": mean, "mean": mean}


def test_read_run_and_hellaswag_ece(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stats = [_stat("quasi_exact_match", "valid", 0.6), _stat("ece_10_bin", "valid", 0.2),
             _stat("quasi_exact_match", "valid", 0.4, "robustness"),
             _stat("quasi_exact_match", "valid", 0.5, "fairness"),
             _stat("quasi_exact_match", "train", 0.9)]
    (run / "stats.json").write_text(json.dumps(stats))
    assert helm_summary.read_run(run, "boolq") == {
        "accuracy": 0.6, "calibration": 0.2, "robustness": 0.4, "fairness": 0.5,
        "calibration_source": "helm"}
    # HellaSwag: no ece_10_bin in stats.json -> computed from per_instance_stats.json
    stats = [_stat("exact_match", "valid", 0.5)]
    (run / "stats.json").write_text(json.dumps(stats))
    probs, correct = [0.9, 0.8, 0.3, 0.6], [1, 0, 0, 1]
    per = [{"instance_id": f"id{i}", "train_trial_index": 0,
            "stats": [_stat("max_prob", "valid", p), _stat("exact_match", "valid", c)]}
           for i, (p, c) in enumerate(zip(probs, correct, strict=True))]
    per.append({"instance_id": "id0", "train_trial_index": 0,
                "perturbation": {"name": "dialect"},
                "stats": [_stat("max_prob", "valid", 0.1), _stat("exact_match", "valid", 1)]})
    (run / "per_instance_stats.json").write_text(json.dumps(per))
    got = helm_summary.read_run(run, "hellaswag")
    assert got["calibration_source"] == "per_instance_stats"
    assert got["calibration"] == pytest.approx(helm_summary.get_ece_em(probs, correct))


def test_an_unperturbed_run_has_robustness_and_fairness_equal_to_accuracy(tmp_path):
    """The paper's protocol for MMLU and HellaSwag (Tables 7-8 equal Table 5 there): no
    data_augmentation, so the worst case over the original alone is the accuracy."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "stats.json").write_text(json.dumps([_stat("exact_match", "test", 0.45),
                                                _stat("ece_10_bin", "test", 0.1)]))
    got = helm_summary.read_run(run, "mmlu")
    assert got["robustness"] == got["fairness"] == got["accuracy"] == 0.45
    # a perturbed run whose fairness stat is missing stays missing (no silent fill)
    (run / "stats.json").write_text(json.dumps([
        _stat("exact_match", "test", 0.45), _stat("exact_match", "test", 0.4, "robustness")]))
    got = helm_summary.read_run(run, "mmlu")
    assert got["robustness"] == 0.4 and got["fairness"] is None


def test_perturbed_overlay_restores_helms_canonical_protocol():
    from prefbias.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "config.yaml", root / "configs" / "helm-perturbed.yaml")
    for scen in ("mmlu", "hellaswag", "boolq", "natural_qa", "quac"):
        assert "data_augmentation=canonical" in cfg["helm"]["scenarios"][scen], scen


def _inst(iid, value, pert=None, trial=0, prob=None):
    stats = [_stat("quasi_exact_match", "valid", value)]
    if prob is not None:
        stats += [_stat("max_prob", "valid", prob), _stat("exact_match", "valid", value)]
    row = {"instance_id": iid, "train_trial_index": trial, "stats": stats}
    if pert:
        row["perturbation"] = {"name": pert, "robustness": pert == "mild_mix",
                               "fairness": pert in ("dialect", "gender"),
                               "computed_on": "perturbed"}
    return row


def test_instance_values_worst_case_and_trials():
    per = [_inst("a", 1.0, prob=0.9), _inst("a", 0.0, "mild_mix"), _inst("a", 1.0, "dialect"),
           _inst("b", 1.0, prob=0.6), _inst("b", 1.0, "mild_mix"), _inst("b", 0.0, "gender"),
           _inst("b", 1.0, "dialect"),
           _inst("c", 0.0, prob=0.2),                          # no perturbation touched it
           _inst("c", 1.0, prob=0.7, trial=1), _inst("c", 1.0, "mild_mix", trial=1)]
    got = helm_summary.instance_values(per, "boolq")
    assert got["accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}       # trials averaged
    assert got["robustness"] == {"a": 0.0, "b": 1.0, "c": 0.5}     # min(original, mild_mix)
    assert got["fairness"] == {"a": 1.0, "b": 0.0, "c": 0.5}       # min over dialect, gender
    assert got["calibration"] == {"a": [[0.9, 1.0]], "b": [[0.6, 1.0]],
                                  "c": [[0.2, 0.0], [0.7, 1.0]]}


def test_group_ci_brackets_the_value_and_stratifies_runs():
    rng = __import__("random").Random(0)
    runs = [{"accuracy": {f"i{k}": float(rng.random() < p) for k in range(60)}}
            for p in (0.2, 0.8)]                                  # two MMLU subjects
    value = sum(sum(r["accuracy"].values()) / 60 for r in runs) / 2
    lo, hi = helm_summary.group_ci(runs, "accuracy", n=500, seed=1)
    assert lo < value < hi and hi - lo < 0.3
    assert helm_summary.group_ci(runs, "accuracy", n=500, seed=1) == (lo, hi)   # seeded
    same = [{"accuracy": {"x": 1.0, "y": 1.0}}]
    assert helm_summary.group_ci(same, "accuracy") == (1.0, 1.0)
    assert helm_summary.group_ci([None, {"accuracy": {}}], "accuracy") == (None, None)
    # calibration: the ECE of resampled (max_prob, exact_match) pairs; a perfectly calibrated
    # constant model (p = 1, always right) has ECE 0 in every replicate
    calib = [{"calibration": {f"i{k}": [[1.0, 1.0]] for k in range(10)}}]
    assert helm_summary.group_ci(calib, "calibration", n=50) == (0.0, 0.0)
    noisy = [{"calibration": {f"i{k}": [[0.9, float(k % 2)]] for k in range(40)}}]
    lo, hi = helm_summary.group_ci(noisy, "calibration", n=200)
    ece = helm_summary.get_ece_em([0.9] * 40, [k % 2 for k in range(40)])
    assert lo <= ece <= hi


def test_ece_em_hand_values():
    # n=4 -> 4 equal-mass bins of one: mean |p - y|
    assert helm_summary.get_ece_em([0.9, 0.8, 0.3, 0.6], [1, 0, 0, 1]) == pytest.approx(
        (0.1 + 0.8 + 0.3 + 0.4) / 4)
    # 20 instances, 10 bins of two
    probs = [0.05 * i for i in range(1, 21)]
    correct = [i % 2 for i in range(20)]
    want = sum(abs((probs[2 * b] + probs[2 * b + 1]) / 2 - 0.5) * 2 / 20 for b in range(10))
    assert helm_summary.get_ece_em(probs, correct) == pytest.approx(want)
    assert helm_summary.get_ece_em([0.7] * 5, [1, 1, 1, 0, 0]) == pytest.approx(0.1)


@pytest.mark.helm
@pytest.mark.slow
def test_ece_em_matches_uncertainty_calibration():
    py = HELM_BIN / "python"
    if not py.exists():
        pytest.fail(f"HELM environment absent ({py}); create it with scripts/setup-helm-env.sh")
    import random

    rng = random.Random(0)
    cases = []
    for n in (3, 10, 37, 200):
        probs = [round(rng.random(), 3) for _ in range(n)]
        cases.append((probs, [int(rng.random() < p) for p in probs]))
    # one interpreter for every case: importing the library is most of the cost
    code = ("import calibration as cal, json, sys\n"
            "for p, c in json.load(sys.stdin):\n"
            "    print(repr(float(cal.get_ece_em(p, c, num_bins=10))))")
    out = subprocess.run([str(py), "-c", code], input=json.dumps(cases),
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == len(cases), out
    for (probs, correct), theirs in zip(cases, out, strict=True):
        assert helm_summary.get_ece_em(probs, correct) == pytest.approx(float(theirs), abs=1e-12)




# ----------------------------------------------------------------------------- summary tables
def test_helm_summarize_cli(tmp_path, tiny_config):
    from prefbias import plan
    from prefbias.cli import main

    rows = plan.stylized_models(tiny_config, 0)
    # Table 5 accuracies of the paper, per model in paper order
    acc = [(.462, .590, .623, .290, .467), (.478, .650, .619, .332, .490),
           (.476, .600, .630, .291, .473), (.469, .630, .585, .269, .497),
           (.460, .650, .598, .256, .477), (.470, .710, .573, .298, .510)]
    labels = [m.label for m in rows]
    # tiny styles order may differ from the paper's: map by label
    by_label = dict(zip(["Qwen 2.5 0.5B", "SFT", "Ultrafeedback", "Ultrafeedback sycophantic",
                         "Ultrafeedback authoritative", "Ultrafeedback persuasive"], acc,
                        strict=True))
    for m in rows:
        for scen, v in zip(helm_summary.SCENARIOS, by_label[m.label], strict=True):
            p = tmp_path / "stats" / m.id / f"{scen}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"accuracy": v, "calibration": 1 - v, "robustness": v,
                                     "fairness": None}))
    # one cell with per-instance values (as helm-run writes them): it gets a bootstrap CI
    first = tmp_path / "stats" / rows[0].id / "boolq.json"
    cell = json.loads(first.read_text())
    cell["runs"] = {"boolq,x": {"instances": {"accuracy": {f"i{k}": float(k % 2) for k in
                                                           range(30)}}}}
    first.write_text(json.dumps(cell))
    spec = {k: tiny_config[k] for k in ("seeds", "sft", "dpo", "styles", "orpo")}
    spec["report"] = {"bootstrap": {"n": 300, "seed": 0, "ci": 0.9}}
    assert main(["helm-summarize", "--stats-dir", str(tmp_path / "stats"), "--spec",
                 json.dumps(spec), "--outdir", str(tmp_path / "out")]) == 0
    import pandas as pd

    accuracy = pd.read_csv(tmp_path / "out" / "accuracy.csv")
    assert list(accuracy.columns) == ["model", "label", "mean_win_rate", "mmlu", "boolq",
                                      "natural_qa", "quac", "hellaswag"] + [
        f"{s}_ci_{b}" for s in helm_summary.SCENARIOS for b in ("low", "high")]
    lo, hi = accuracy.loc[0, "boolq_ci_low"], accuracy.loc[0, "boolq_ci_high"]
    assert 0.2 < lo < 0.5 < hi < 0.8  # 15 of 30 right
    assert (lo, hi) == pytest.approx(helm_summary.group_ci(
        [cell["runs"]["boolq,x"]["instances"]], "accuracy", n=300, seed=0, ci=0.9))
    ci_cols = [c for c in accuracy.columns if c.endswith(("_ci_low", "_ci_high"))]
    assert accuracy[ci_cols].notna().sum().sum() == 2  # no instances elsewhere -> no CI
    assert accuracy["label"].tolist() == labels
    assert accuracy["model"].tolist() == [m.id for m in rows]
    want = {"Qwen 2.5 0.5B": .28, "SFT": .78, "Ultrafeedback": .56,
            "Ultrafeedback sycophantic": .40, "Ultrafeedback authoritative": .30,
            "Ultrafeedback persuasive": .68}
    for label, rate in zip(accuracy["label"], accuracy["mean_win_rate"], strict=True):
        assert rate == pytest.approx(want[label])
    # calibration = 1 - accuracy, lower is better -> the same ranking
    calib = pd.read_csv(tmp_path / "out" / "calibration.csv")
    assert calib["mean_win_rate"].tolist() == pytest.approx(accuracy["mean_win_rate"].tolist())
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary.columns) == ["model", "label", "accuracy", "calibration", "robustness",
                                     "fairness"]
    assert summary["fairness"].isna().all()  # no cells -> no win rate
    # a missing stats file fails unless --allow-missing
    (tmp_path / "stats" / rows[0].id / "quac.json").unlink()
    assert main(["helm-summarize", "--stats-dir", str(tmp_path / "stats"), "--spec",
                 json.dumps(spec), "--outdir", str(tmp_path / "out")]) == 2


# ----------------------------------------------------------------------------- real HELM
@pytest.mark.helm
@pytest.mark.slow
def test_helm_smoke_run(tmp_path, helm_tiny_model, tiny_config):
    """crfm-helm end to end on the fixtures: stats for the four groups, ece_10_bin from HELM for
    a generation scenario and from per_instance_stats for HellaSwag, and the cache key. Both
    scenarios run in one helm-run (helm.jobs: per_model, as in make demo), and each gets its
    own stats file."""
    if not (HELM_BIN / "helm-run").exists():
        pytest.fail(f"HELM environment absent ({HELM_BIN}); create it with "
                    "scripts/setup-helm-env.sh (make test does)")
    spec = {**tiny_config["helm"], "max_eval_instances": 3, "num_output_tokens": 4,
            "python": str(HELM_BIN)}
    scenarios = ["boolq", "hellaswag"]
    out = tmp_path / "all"
    results = helm_run.helm_run(model_dir=helm_tiny_model, model_name="tiny-s0", scenario=scenarios,
                                spec=spec, outdir=out,
                                stats_path=[tmp_path / f"{s}.json" for s in scenarios],
                                fixtures=FIXTURES)
    run_dirs = [p.parent.name for p in
                (out / "benchmark_output" / "runs" / "prefbias").glob("*/stats.json")]
    assert len(run_dirs) == 2
    for scen in scenarios:
        saved = json.loads((tmp_path / f"{scen}.json").read_text())
        assert saved == json.loads(json.dumps(results[scen]))
        assert saved["scenario"] == scen and saved["helm_invocation"] == scenarios
        for g in ("accuracy", "calibration", "robustness", "fairness"):
            assert saved[g] is not None, (scen, g)
            assert 0.0 <= saved[g] <= 1.0
        assert saved["helm_model"].endswith(helm_env.weights_hash(helm_tiny_model))
        (run_name,) = saved["runs"]
        assert run_name in run_dirs
        # the per-instance values behind the bootstrap CIs reproduce HELM's own numbers
        inst = saved["runs"][run_name]["instances"]
        for g in ("accuracy", "robustness", "fairness"):
            vals = list(inst[g].values())
            assert len(vals) == 3 and sum(vals) / 3 == pytest.approx(saved[g]), (scen, g)
        assert helm_summary._ece_of(list(inst["calibration"].values())) == pytest.approx(
            saved["calibration"])
        assert saved["helm_model"].replace("/", "_") in run_name
    # each scenario got its own run (BoolQ's name starts "boolq", HellaSwag's "commonsense")
    assert next(iter(results["boolq"]["runs"])).startswith("boolq")
    assert next(iter(results["hellaswag"]["runs"])).startswith("commonsense:dataset=hellaswag")
    # fix 3: real log-probs -> HELM itself reports ece_10_bin for BoolQ
    run = next(iter(results["boolq"]["runs"].values()))
    assert run["calibration_source"] == "helm"
    run = next(iter(results["hellaswag"]["runs"].values()))
    assert run["calibration_source"] in ("helm", "per_instance_stats")
    # prod_env as written for the run, cache under it
    env = out / "prod_env"
    assert (env / "model_deployments.yaml").exists()
    assert list(env.glob("cache/*.sqlite")), "HELM answer cache missing"


def test_helm_missing_env_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFBIAS_HELM_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(helm_run.HelmError, match="setup-helm-env.sh"):
        helm_run.helm_bin_dir({})


def test_fixtures_complete():
    for scen, dirs in helm_run.FIXTURE_DIRS.items():
        for d in dirs:
            assert any((FIXTURES / d).rglob("*")), scen
    assert (FIXTURES / "perturbations/dialect/SAE_to_AAVE_mapping.json").exists()
    assert (FIXTURES / "perturbations/person_name/data/person_names.txt").exists()
    stub = FIXTURES / "nltk_data/tokenizers/punkt_tab/english"
    assert sorted(p.name for p in stub.iterdir()) == sorted(
        ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt",
         "sentence_starters.txt"])


@pytest.mark.slow
@pytest.mark.helm
def test_helm_run_folder_opens_in_helms_own_tools(tmp_path, helm_tiny_model, tiny_config):
    """A HELM run folder as the pipeline leaves it (W/helm/<model>/<scenario>/) opens with HELM's
    own tools, as docs/READING.md says: helm-summarize writes the suite's summaries, and helm-server
    exports the browsable site (the static form of `helm-server -o ... --suite prefbias`)."""
    if not (HELM_BIN / "helm-run").exists():
        pytest.fail(f"HELM environment absent ({HELM_BIN}); create it with "
                    "scripts/setup-helm-env.sh (make test does)")
    spec = {**tiny_config["helm"], "max_eval_instances": 3, "num_output_tokens": 4,
            "python": str(HELM_BIN)}
    out = tmp_path / "boolq"
    helm_run.helm_run(model_dir=helm_tiny_model, model_name="tiny-s0", scenario=["boolq"],
                      spec=spec, outdir=out, stats_path=[tmp_path / "boolq.json"],
                      fixtures=FIXTURES)
    bo = out / "benchmark_output"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([str(HELM_BIN / "helm-summarize"), "--suite", helm_run.SUITE, "-o", str(bo),
                    "--schema-validation", "off", "--auto-generate-schema"], check=True,
                   cwd=out, env=env, capture_output=True, text=True, timeout=600)
    suite = bo / "runs" / helm_run.SUITE
    for name in ("summary.json", "runs.json", "groups.json"):
        assert (suite / name).is_file(), name
    runs = json.loads((suite / "runs.json").read_text())
    assert len(runs) == 1 and runs[0]["run_spec"]["name"].startswith("boolq")
    site = tmp_path / "site"
    subprocess.run([str(HELM_BIN / "helm-server"), "-o", str(bo), "--suite", helm_run.SUITE,
                    "--export-path", str(site)], check=True, cwd=out, env=env,
                   capture_output=True, text=True, timeout=600)
    assert (site / "index.html").is_file()
