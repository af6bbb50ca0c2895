"""What rules need on a cluster (issue 13.4, 13.9): internet, credentials, GPU driver, and the
no-CPU-fallback guard of jobs that were given GPUs. Fast: no Slurm, no GPU (a fake sinfo)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefbias.hpc import gpu, needs, preflight, resources
from prefbias.hpc.resources import resolve
from prefbias.rule_table import API_RULES, BACKEND_SECTION, RULES

ROOT = Path(__file__).resolve().parents[1]
NO_KEYS = {"PATH": os.environ.get("PATH", ""), "HF_HOME": "/nonexistent-hf-home"}


# ------------------------------------------------------------------ internet and credentials

def test_paper_config_credentials_are_named_and_values_never_printed(paper_config):
    rules = ["fetch_model", "judge", "train_sft", "helm_run"]
    problems = needs.missing_credentials(paper_config, rules, NO_KEYS)
    text = "\n".join(problems)
    assert "OPENAI_API_KEY is not set: rules judge" in text
    assert "HF_TOKEN is not set: rules fetch_model" in text
    for gated in ("gemma-7b-it", "mistral-7b-it-v0.2", "nemotron-70b-reward"):
        assert gated in text
    assert "qwen2.5-0.5b" not in text  # Qwen is not gated
    secret = "sk-proj-DO-NOT-PRINT-1234"
    env = {**NO_KEYS, "OPENAI_API_KEY": secret}
    problems = needs.missing_credentials(paper_config, rules, env)
    assert len(problems) == 1 and "HF_TOKEN" in problems[0]
    assert secret not in "\n".join(problems)


def test_hf_token_saved_by_login_counts(paper_config, tmp_path):
    (tmp_path / "token").write_text("hf_x")
    env = {"HF_HOME": str(tmp_path), "OPENAI_API_KEY": "x"}
    assert needs.missing_credentials(paper_config, ["fetch_model", "judge"], env) == []


def test_api_rules_are_localrules_unless_an_internet_partition_is_named(paper_config,
                                                                       monkeypatch):
    rules = list(BACKEND_SECTION)
    monkeypatch.delenv("PREFBIAS_INTERNET_PARTITION", raising=False)
    assert resources.api_local_rules(paper_config, rules) == ["judge", "judge_check"]
    monkeypatch.setenv("PREFBIAS_INTERNET_PARTITION", "webnodes")
    assert resources.api_local_rules(paper_config, rules) == []
    r = resolve(paper_config, "judge")
    assert r["slurm_partition"] == "webnodes" and "gpu" not in r
    # a local judge (hf) needs no internet and stays on the GPU partition
    cfg = copy.deepcopy(paper_config)
    cfg["judge"]["backend"] = "hf"
    assert not needs.needs_internet(cfg, "judge")
    assert resolve(cfg, "judge")["gpu"] == 1


def test_sycophancy_grading_is_split_from_the_gpu_dialogues(paper_config, monkeypatch):
    """The paper's LLM grader needs the internet, the dialogues a GPU: separate jobs, so the
    grader runs on the login node and the GPU jobs stay offline."""
    monkeypatch.delenv("PREFBIAS_INTERNET_PARTITION", raising=False)
    monkeypatch.delenv("PREFBIAS_INTERNET_GPU_PARTITION", raising=False)
    assert paper_config["sycophancy"]["grader"]["kind"] == "llm"
    assert needs.credentials(paper_config, "sycophancy_grade") == ["OPENAI_API_KEY"]
    for rule in ("sycophancy_answer", "sycophancy_ays"):
        assert not needs.needs_internet(paper_config, rule)
        assert resolve(paper_config, rule)["gpu"] == 1
    assert "sycophancy_grade" in resources.api_local_rules(paper_config, list(API_RULES))
    assert resources.internet_problems(paper_config, list(API_RULES)) == []
    cfg = copy.deepcopy(paper_config)
    cfg["sycophancy"]["grader"] = {"kind": "match"}
    assert not needs.needs_internet(cfg, "sycophancy_grade")


def test_gpu_rule_calling_an_api_needs_an_internet_gpu_partition(paper_config, monkeypatch):
    monkeypatch.delenv("PREFBIAS_INTERNET_GPU_PARTITION", raising=False)
    cfg = copy.deepcopy(paper_config)
    # a grader given a GPU (e.g. a site that wants it beside a local model): GPU + internet
    cfg["resources"]["sycophancy_grade"] = {"slurm_partition": "gpu", "gpu": 1}
    (problem,) = resources.internet_problems(cfg, ["sycophancy_grade", "sycophancy_ays"])
    assert "cluster.internet.gpu_partition" in problem and "sycophancy_grade" in problem
    monkeypatch.setenv("PREFBIAS_INTERNET_GPU_PARTITION", "gpu-web")
    assert resources.internet_problems(cfg, ["sycophancy_grade"]) == []
    r = resolve(cfg, "sycophancy_grade")
    assert r["slurm_partition"] == "gpu-web" and r["gpu"] == 1


def test_needs_table_lists_every_rule(paper_config):
    rows = {r["rule"]: r for r in resources.table(paper_config, sorted(RULES))}
    assert rows["helm_stage"] == {"rule": "helm_stage", "image": "helm", "gpus": 0,
                                  "internet": True, "credentials": [],
                                  "runs_on": "login node (localrule)"}
    assert rows["sycophancy_answer"]["image"] == "vllm"
    assert rows["reward_winrate"]["gpus"] == 2 and not rows["reward_winrate"]["internet"]
    assert rows["fetch_model"]["credentials"] == ["HF_TOKEN"]


# ------------------------------------------------------------------ GPU: no silent CPU fallback

@pytest.mark.parametrize(("env", "given"), [
    ({}, None),
    ({"SLURM_GPUS": "0"}, None),
    ({"SLURM_GPUS_PER_NODE": "h100:0"}, None),
    ({"SLURM_GPUS": "1"}, "SLURM_GPUS=1"),
    ({"SLURM_GPUS_PER_NODE": "gpu:h100:2"}, "SLURM_GPUS_PER_NODE=gpu:h100:2"),
    ({"SLURM_JOB_GPUS": "0"}, "SLURM_JOB_GPUS=0"),  # GPU index 0, not zero GPUs
    ({"SLURM_GPUS_ON_NODE": "4"}, "SLURM_GPUS_ON_NODE=4"),
    ({"PREFBIAS_REQUIRE_GPUS": "1"}, "PREFBIAS_REQUIRE_GPUS=1"),
])
def test_allocated_gpus_reads_slurms_variables(env, given):
    assert gpu.allocated_gpus(env) == given


def test_job_given_gpus_without_cuda_fails_at_once():
    with pytest.raises(gpu.GpuMissing, match=r"SLURM_GPUS_ON_NODE=1.*refusing to run on the CPU"):
        gpu.require_cuda_if_allocated({"SLURM_GPUS_ON_NODE": "1"}, cuda_available=lambda: False)
    gpu.require_cuda_if_allocated({"SLURM_GPUS_ON_NODE": "1"}, cuda_available=lambda: True)
    gpu.require_cuda_if_allocated({}, cuda_available=lambda: False)  # CPU rule: no check


def test_prefbias_cli_refuses_to_start_in_a_gpu_job_without_cuda(tmp_path):
    """The real entry point, real torch (no CUDA device on this machine): exit 3, clear reason,
    before the subcommand runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_GPUS_ON_NODE="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "prefbias", "resources", "--configfile",
                           str(ROOT / "config.yaml"), "--rules", "judge"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert proc.returncode == 3, proc.stderr
    assert "refusing to run on the CPU" in proc.stderr
    assert "CUDA_VISIBLE_DEVICES=''" in proc.stderr
    assert '"judge"' not in proc.stdout  # the subcommand never ran
    env.pop("SLURM_GPUS_ON_NODE")
    proc = subprocess.run([sys.executable, "-m", "prefbias", "resources", "--configfile",
                           str(ROOT / "config.yaml"), "--rules", "judge"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_images_document_their_cuda_build_and_driver():
    from tests.test_containers import LOCKS, lock

    for name, lock_path in LOCKS.items():
        labels = gpu.def_labels(ROOT / "containers" / f"{name}.def")
        torch_v = lock(ROOT / lock_path)["torch"]
        assert labels["torch"] == torch_v, name
        assert labels["cuda"] == gpu.TORCH_PYPI_CUDA[".".join(torch_v.split(".")[:2])], name
        assert int(labels["min_nvidia_driver"]) == gpu.MIN_DRIVER[int(labels["cuda"][:2])]
        assert int(labels["min_nvidia_driver"]) == 580  # CUDA 13 (torch 2.13/2.14 on PyPI)


def test_preflight_checks_the_driver_against_the_images(paper_config, monkeypatch):
    monkeypatch.delenv("PREFBIAS_GPU_DRIVER", raising=False)
    rules = ["train_sft", "sycophancy_answer", "helm_run", "tables"]
    problems, notes = gpu.driver_problems(paper_config, rules, ROOT, driver="550.54.15")
    assert len(problems) == 3 and not notes
    assert any("containers/vllm.def" in p and "sycophancy_answer" in p for p in problems)
    assert all("older than 580" in p for p in problems)
    assert gpu.driver_problems(paper_config, rules, ROOT, driver="580.65.06") == ([], [])
    monkeypatch.setenv("PREFBIAS_GPU_DRIVER", "575.51.03")
    assert len(gpu.driver_problems(paper_config, rules, ROOT)[0]) == 3
    # CPU-only run: nothing to check
    cpu = {**paper_config, "cluster": {**paper_config["cluster"], "use_gpus": False}}
    assert gpu.driver_problems(cpu, rules, ROOT, driver="470.1") == ([], [])


def _fake_slurm(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text(
        "#!/bin/sh\nprintf 'cpu|c1|64|500000|(null)\\nh100|g1|64|1000000|gpu:h100:8\\n'\n")
    (bin_dir / "sacctmgr").write_text("#!/bin/sh\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return str(bin_dir)


def test_preflight_cli_names_missing_credentials_and_old_driver(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
           and not k.startswith(("SLURM_", "PREFBIAS_"))}
    env.update(PATH=_fake_slurm(tmp_path) + os.pathsep + env["PATH"], HF_HOME=str(tmp_path),
               PYTHONPATH=str(ROOT / "src"), PREFBIAS_GPU_DRIVER="550.54.15")
    proc = subprocess.run([sys.executable, "-m", "prefbias", "preflight", "--configfile",
                           "config.yaml"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "OPENAI_API_KEY is not set" in proc.stderr
    assert "HF_TOKEN is not set" in proc.stderr
    assert "older than 580" in proc.stderr
    env.update(OPENAI_API_KEY="sk-SECRET-VALUE", HF_TOKEN="hf_SECRET", PREFBIAS_GPU_DRIVER="580.65")
    proc = subprocess.run([sys.executable, "-m", "prefbias", "preflight", "--configfile",
                           "config.yaml"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert "SECRET" not in proc.stderr + proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert isinstance(preflight.format_problems(["x"]), str)
