"""HELM data staging for offline compute nodes (issue 13.4): HELM's own downloaders run on the
login node; with the fixtures in place they find every file and the whole staging works with
the network cut off. Runs crfm-helm's scenario code (no model): a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prefbias.evaluation import helm_env, helm_run, helm_stage

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "helm"


def _spec(**over):
    spec = dict(yaml.safe_load((ROOT / "config.yaml").read_text())["helm"])
    spec.update(over)
    return spec


def _no_network(monkeypatch):
    """Any urllib download goes to a closed local port and fails at once."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def helm_available():
    try:
        helm_env.helm_bin_dir({})
    except helm_env.HelmError as e:
        pytest.skip(str(e))


def test_stage_entries_cover_every_configured_scenario():
    spec = _spec()
    entries = helm_stage.stage_entries(spec)
    assert len(entries) == 4 + len(spec["mmlu_subjects"])
    # the paper's protocol: MMLU and HellaSwag without perturbations, the other three with them
    assert "mmlu:subject=econometrics" in entries
    assert "boolq:data_augmentation=canonical" in entries
    assert all("model=" not in e for e in entries)


def test_staging_runs_helms_downloaders_offline_on_the_fixtures(tmp_path, monkeypatch,
                                                               helm_available):
    _no_network(monkeypatch)
    out = tmp_path / "staged"
    spec = _spec(mmlu_subjects=["abstract_algebra"])
    manifest = helm_stage.stage(spec, out, fixtures=FIXTURES, timeout_s=300)
    entries = manifest["entries"]
    assert set(entries) == set(helm_stage.stage_entries(spec))
    by_scenario = {v["scenario"]: v for v in entries.values()}
    assert set(by_scenario) == {"boolq", "mmlu", "natural_qa", "quac", "hellaswag"}
    for scen, v in by_scenario.items():
        assert v["instances"] > 0, scen  # HELM parsed the staged files into instances
        # the paper's protocol (docs/REPORT-FIDELITY.md): MMLU and HellaSwag unperturbed
        assert v["perturbations"] == ([] if scen in ("mmlu", "hellaswag") else [
            "MildMixPerturbation", "DialectPerturbation", "GenderPerturbation",
            "PersonNamePerturbation"]), scen
    # laid out as helm_run's --fixtures expects; no HELM .lock files left behind
    for scen, dirs in helm_run.FIXTURE_DIRS.items():
        for d in dirs:
            assert any((out / d).rglob("*")), scen
    assert (out / "perturbations/dialect/SAE_to_AAVE_mapping.json").exists()
    assert (out / "perturbations/person_name/data/person_names.txt").exists()
    assert not list(out.rglob("*.lock"))
    assert json.loads((out / "staged.json").read_text())["files"]
    # a second staging never overwrites a finished one
    with pytest.raises(FileExistsError):
        helm_stage.stage(spec, out, fixtures=FIXTURES)


def test_staging_without_data_really_downloads(tmp_path, monkeypatch, helm_available):
    """No fixtures and no network: HELM's own downloader is what runs (and fails, naming the
    source), so the staging is not a copy of whatever happens to be there."""
    _no_network(monkeypatch)
    out = tmp_path / "staged"
    spec = _spec(scenarios={"boolq": "boolq:data_augmentation=canonical"})
    with pytest.raises(helm_env.HelmError, match="staging HELM data failed") as err:
        helm_stage.stage(spec, out, timeout_s=300)
    assert "urlopen error" in str(err.value)  # helm.common.general.ensure_file_downloaded
    assert not out.exists()


def test_the_helm_rules_read_the_staged_data(paper_config):
    """helm_stage is a localrule (login node) and every helm_run job takes its output as
    --fixtures (rules/helm.smk)."""
    from prefbias.jobspec import job_spec
    from prefbias.rule_table import LOCAL_RULES

    text = (ROOT / "rules" / "helm.smk").read_text()
    assert "helm_stage" in LOCAL_RULES
    assert text.count("--fixtures {input.data}") == 1  # the one helm_run rule
    # only the keys staging reads: no re-staging otherwise
    spec = job_spec(paper_config, "helm_stage")
    assert sorted(spec) == ["fixtures", "mmlu_subjects", "natural_qa_mode", "python", "scenarios"]


@pytest.mark.helm
@pytest.mark.slow
def test_helm_run_on_the_staged_data_needs_no_network(tmp_path, monkeypatch, helm_available,
                                                      helm_tiny_model):
    """Login node stages, compute node (no network) runs helm-run with --fixtures <staged>:
    HELM finds every file and produces stats."""
    _no_network(monkeypatch)
    monkeypatch.setenv("PREFBIAS_NO_FORKSERVER", "1")
    model = helm_tiny_model
    spec = _spec(mmlu_subjects=["abstract_algebra"], max_eval_instances=2, num_output_tokens=2)
    staged = tmp_path / "staged"
    helm_stage.stage(spec, staged, fixtures=FIXTURES, timeout_s=300)
    stats = helm_run.helm_run(model_dir=model, model_name="tiny-staged", scenario="boolq",
                              spec=spec, outdir=tmp_path / "job", fixtures=staged,
                              stats_path=tmp_path / "boolq.json")
    assert stats["accuracy"] is not None and stats["max_eval_instances"] == 2
    log = (tmp_path / "job" / "helm-run.log").read_text()
    assert "Not downloading" in log or "already exists" in log
