"""prefbias.hpc without a cluster: per-rule resources, retry escalation, ${VAR:-default} site
settings, the job environment, preflight logic on synthetic cluster facts, and the profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prefbias.config import ConfigError, validate_config
from prefbias.hpc import preflight
from prefbias.hpc.resources import GPU_RULES, ResourceError, resolve, rule_resources, rule_threads
from prefbias.hpc.site import cluster_settings, expand, job_environment

ROOT = Path(__file__).resolve().parents[1]


def test_expand_env_defaults():
    env = {"A": "x", "EMPTY": ""}
    assert expand("${A:-d}", env) == "x"
    assert expand("${B:-d}", env) == "d"
    assert expand("${EMPTY:-d}", env) == "d"
    assert expand("$A/y", env) == "x/y"
    assert expand("${B:-$A}", env) == "x"
    assert expand({"k": ["${B:-}"]}, env) == {"k": [""]}
    assert expand("~/c", env).startswith("/")


def test_paper_config_gpu_rules_go_to_h100(paper_config, monkeypatch):
    for var in ("PREFBIAS_GPU_PARTITION", "PREFBIAS_CPU_PARTITION", "PREFBIAS_SLURM_ACCOUNT",
                "PREFBIAS_GPU_MODEL"):
        monkeypatch.delenv(var, raising=False)
    api = {"judge"} if paper_config["judge"]["backend"] == "openai" else set()
    for rule in GPU_RULES:
        r = resolve(paper_config, rule)
        if rule in api:
            assert "gpu" not in r and r["slurm_partition"] == "cpu", (rule, r)
        else:
            assert r["slurm_partition"] == "h100" and r["gpu"] >= 1, (rule, r)
    for rule in ("tables", "figures", "sft_data", "some_new_rule"):
        r = resolve(paper_config, rule)
        assert r["slurm_partition"] == "cpu" and "gpu" not in r
        assert {"cpus_per_task", "mem_mb", "runtime"} <= set(r)
    assert "slurm_account" not in resolve(paper_config, "train_sft")  # '' -> Slurm default


def test_environment_overrides_site_settings(paper_config, monkeypatch):
    monkeypatch.setenv("PREFBIAS_GPU_PARTITION", "gpu-h100")
    monkeypatch.setenv("PREFBIAS_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("PREFBIAS_GPU_MODEL", "h100")
    r = resolve(paper_config, "train_dpo")
    assert r["slurm_partition"] == "gpu-h100" and r["slurm_account"] == "proj42"
    assert r["gpu_model"] == "h100"


def test_retry_escalates_and_is_clipped(paper_config):
    r1, r2, r3 = (resolve(paper_config, "generate", a) for a in (1, 2, 3))
    assert r2["runtime"] == int(r1["runtime"] * 1.5) and r2["mem_mb"] == int(r1["mem_mb"] * 1.5)
    assert r3["runtime"] > r2["runtime"]
    assert r1["gpu"] == r3["gpu"] and r1["cpus_per_task"] == r3["cpus_per_task"]
    big = resolve(paper_config, "train_sft", 5)
    assert big["runtime"] == paper_config["cluster"]["max"]["runtime"]
    assert big["mem_mb"] == paper_config["cluster"]["max"]["mem_mb"]


def test_rule_resources_are_snakemake_callables(paper_config):
    res = rule_resources(paper_config, "ref_logps")
    assert callable(res["runtime"]) and callable(res["mem_mb"])
    assert res["runtime"](wildcards=None, attempt=2) == resolve(paper_config, "ref_logps", 2)[
        "runtime"]
    assert rule_threads(paper_config, "ref_logps") == res["cpus_per_task"]
    import inspect

    assert list(inspect.signature(res["mem_mb"]).parameters) == ["wildcards", "attempt"]


def test_tiny_config_is_cpu_only_and_small(tiny_config):
    for rule in GPU_RULES:
        r = resolve(tiny_config, rule)
        assert "gpu" not in r and r["slurm_partition"] == "cpu"
        assert r["mem_mb"] <= 4000 and r["runtime"] <= 30 and r["cpus_per_task"] <= 2


def test_unknown_resource_key_is_named(paper_config):
    cfg = dict(paper_config, resources={"default": {}, "x": {"gpus": 2}})
    with pytest.raises(ResourceError, match=r"resources.x.*gpus"):
        resolve(cfg, "x")
    bad = dict(paper_config, resources={"train_sft": {"gpus": 2}})
    with pytest.raises(ConfigError, match="resources.train_sft"):
        validate_config(bad)


def test_job_environment_binds_existing_dirs(paper_config, tmp_path):
    scratch, cache = tmp_path / "scratch", tmp_path / "hf"
    scratch.mkdir()
    cache.mkdir()
    env = {"PREFBIAS_SCRATCH": str(scratch), "HF_HOME": str(cache), "APPTAINER_BIND": "/data"}
    out = job_environment(paper_config, env)
    assert out["HF_HOME"] == str(cache) and out["PREFBIAS_SCRATCH"] == str(scratch)
    assert out["APPTAINER_BIND"] == f"/data,{scratch},{cache}"
    assert cluster_settings(paper_config, env)["scratch"] == str(scratch)


# ------------------------------------------------------------------ preflight on synthetic facts


def _facts(gres="gpu:h100:4(S:0-1)", accounts=("proj",)):
    return preflight.ClusterFacts(
        partitions={"h100": [preflight.Node("g1", 64, 512000, preflight.parse_gres(gres))],
                    "cpu": [preflight.Node("c1", 32, 256000, {})]},
        accounts=set(accounts), user="me")


def test_parse_gres():
    assert preflight.parse_gres("gpu:h100:4(S:0-1)") == {"h100": 4}
    assert preflight.parse_gres("gpu:2,tmpdisk:100") == {"": 2}
    assert preflight.parse_gres("(null)") == {}


def test_preflight_passes_on_a_matching_cluster(paper_config):
    cfg = dict(paper_config, cluster={**paper_config["cluster"], "account": "proj"})
    assert preflight.check_resources(cfg, GPU_RULES + ("tables",), _facts()) == []


def test_preflight_more_gpus_than_a_node_has(paper_config):
    cfg = dict(paper_config, resources={**paper_config["resources"],
                                        "train_sft": {"slurm_partition": "gpu", "gpu": 8}})
    problems = preflight.check_resources(cfg, ["train_sft"], _facts())
    assert len(problems) == 1
    assert ("train_sft ask for 8 GPU(s) but the largest node in partition 'h100' has 4"
            in problems[0])


def test_preflight_wrong_gpu_model(paper_config):
    cfg = dict(paper_config, cluster={**paper_config["cluster"], "gpu_model": "a100"})
    problems = preflight.check_resources(cfg, ["generate"], _facts())
    assert "of type 'a100'" in problems[0] and "gres there: h100:4" in problems[0]


def test_preflight_groups_rules_per_problem(paper_config):
    cfg = dict(paper_config, cluster={**paper_config["cluster"],
                                      "partitions": {"gpu": "nope", "cpu": "cpu"}})
    problems = preflight.check_resources(cfg, GPU_RULES, _facts())
    assert len(problems) == 1 and "partition 'nope' does not exist" in problems[0]
    assert "style_shard" in problems[0] and "partitions here: cpu, h100" in problems[0]


def test_preflight_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "train.sif").write_bytes(b"x")
    images = {"train_sft": "images/train.sif", "generate": "images/vllm.sif",
              "helm_run": "docker://x/helm:1", "judge": "oras://x/y@sha256:" + "0" * 64,
              "tables": None}
    problems = preflight.check_images(images, tmp_path)
    text = "\n".join(problems)
    assert "image file 'images/vllm.sif' does not exist (needed by generate)" in text
    assert "apptainer build images/vllm.sif containers/vllm.def" in text
    assert "'docker://x/helm:1' (used by helm_run) is not pinned by digest" in text
    assert "tables have no container image" in text
    assert "train_sft" not in text and "judge" not in text


def test_preflight_missing_slurm_commands(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(preflight.PreflightError, match="`sinfo` not found"):
        preflight.query_cluster(timeout=1)


# ------------------------------------------------------------------ the profile


def test_profile_settings():
    prof = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    assert prof["software-deployment-method"] == "apptainer"
    assert "--nv" in prof["apptainer-args"] and "PYTHONPATH=$PWD/src" in prof["apptainer-args"]
    assert prof["slurm-requeue"] is True and prof["retries"] >= 1
    assert prof["latency-wait"] >= 30 and prof["jobs"] >= 1
    assert {"runtime", "mem_mb"} <= set(prof["default-resources"])


def test_no_run_mode_settings_in_a_workflow_profile():
    run_mode = {"executor", "jobs", "software-deployment-method", "sdm", "apptainer-args",
                "default-resources", "retries", "cores"}
    for path in (ROOT / "profiles").glob("*/config*.yaml"):
        keys = set(yaml.safe_load(path.read_text()) or {})
        assert not keys & run_mode, (path, keys & run_mode)


def test_profile_is_accepted_by_snakemake(tmp_path):
    """snakemake parses the profile (dry run of the test workflow; executor plugin present)."""
    import subprocess
    import sys

    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        ["timeout", "-k", "5", "400", snakemake, "--profile", "slurm", "-s",
         "tests/slurm/Snakefile", "--configfile", "tests/slurm/config.yaml", "--directory",
         str(tmp_path), "--sdm", "env-modules", "-n", "--executor", "local", "--cores", "1"],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "flaky" in proc.stdout + proc.stderr
