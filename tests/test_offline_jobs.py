"""Compute-node jobs run offline (issue 22.6): offline Hugging Face libraries, the GPU count
their rule requested, caches on node-local scratch; and every GPU rule's command runs in a
closed network namespace (``unshare -n``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from prefbias.hpc import hook, site
from prefbias.hpc.gpu import GpuMissing, require_cuda_if_allocated
from prefbias.hpc.resources import job_gpus, requested_gpus

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def gpu_rules(config) -> list[str]:
    """Rules with a GPU request in config.yaml's ``resources:`` (the judge's too: it drops it
    only with an API backend)."""
    return sorted(r for r, res in config["resources"].items()
                  if r != "default" and int(res.get("gpu", 0)) > 0)


def test_gpu_rules_are_the_expected_ones(paper_config):
    assert all(requested_gpus(paper_config, r) for r in gpu_rules(paper_config) if r != "judge")
    assert {"train_sft", "train_dpo", "train_orpo", "generate", "style_shard", "ref_logps",
            "helm_run", "judge", "reward_winrate", "sycophancy_answer",
            "sycophancy_ays"} <= set(gpu_rules(paper_config))


def test_node_environment_offline_gpus_and_node_local_caches(paper_config, tmp_path):
    node_tmp = tmp_path / "node-tmp"
    env = site.node_job_environment(paper_config, job_gpus(paper_config, ["train_orpo"]),
                                    {"TMPDIR": str(node_tmp), "APPTAINER_BIND": "/data"},
                                    cwd=ROOT)
    assert {k: env[k] for k in site.OFFLINE} == {"HF_HUB_OFFLINE": "1",
                                                  "TRANSFORMERS_OFFLINE": "1",
                                                  "HF_DATASETS_OFFLINE": "1"}
    assert env["PREFBIAS_REQUIRE_GPUS"] == "1"
    root = node_tmp.resolve() / f"prefbias-cache-{os.getuid()}"
    for var in ("VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR",
                "HF_DATASETS_CACHE", "CUDA_CACHE_PATH"):
        assert Path(env[var]).parent == root and ROOT not in Path(env[var]).parents, var
    assert env["APPTAINER_BIND"] == f"/data,{root}"
    # the 70B reward model asks for 2; a group of jobs gets the most any of them asked for
    assert job_gpus(paper_config, ["reward_winrate", "judge"]) == 2
    assert job_gpus(paper_config, ["sycophancy_grade"]) == 0
    # a CPU rule: offline all the same, no GPU requirement
    cpu = site.node_job_environment(paper_config, 0, {}, cwd=ROOT)
    assert "PREFBIAS_REQUIRE_GPUS" not in cpu and cpu["HF_HUB_OFFLINE"] == "1"
    # cluster.node_scratch wins over $TMPDIR
    cfg = {**paper_config, "cluster": {**paper_config["cluster"], "node_scratch": "/scratch/x"}}
    got = site.node_job_environment(cfg, 1, {"TMPDIR": str(node_tmp)}, cwd=ROOT)
    assert got["VLLM_CACHE_ROOT"] == f"/scratch/x/prefbias-cache-{os.getuid()}/vllm"


def test_caches_inside_the_repository_are_refused(paper_config):
    with pytest.raises(ValueError, match="node-local scratch"):
        site.node_job_environment(paper_config, 1, {"TMPDIR": str(ROOT / "tmp")},
                                  cwd=ROOT)


def test_gpu_check_holds_without_slurm_variables(paper_config):
    """The jobstep executor's nested srun drops SLURM_GPUS*: the exported count still stops a
    job that sees no CUDA device."""
    env = site.node_job_environment(paper_config, job_gpus(paper_config, ["train_dpo"]), {},
                                    cwd=ROOT)
    assert not any(k.startswith("SLURM_") for k in env)
    with pytest.raises(GpuMissing, match="PREFBIAS_REQUIRE_GPUS=1"):
        require_cuda_if_allocated(env, cuda_available=lambda: False)


SNAKEFILE = """
import sys
sys.path.insert(0, {src!r})
from prefbias.config import load_config
from prefbias.hpc.hook import on_workflow_load
config = load_config({config!r})
on_workflow_load(workflow, config)

rule reward_winrate:
    output: "gpu.txt"
    shell: "echo $HF_HUB_OFFLINE,$TRANSFORMERS_OFFLINE,$HF_DATASETS_OFFLINE,"
           "${{{{PREFBIAS_REQUIRE_GPUS:-none}}}},$TRITON_CACHE_DIR > {{output}}"

rule sycophancy_grade:
    output: "cpu.txt"
    shell: "echo ${{{{HF_HUB_OFFLINE:-online}}}},${{{{PREFBIAS_REQUIRE_GPUS:-none}}}} > {{output}}"
"""


def test_remote_snakemake_job_gets_the_node_environment(tmp_path):
    """Real Snakemake: a job in remote mode (as the Slurm executor runs every job that is not a
    localrule) gets the node environment of its rule; the main process (login node) does not."""
    wd, node = tmp_path / "wd", tmp_path / "node"
    wd.mkdir()
    node.mkdir()
    (wd / "Snakefile").write_text(SNAKEFILE.format(src=str(ROOT / "src"),
                                                         config=str(ROOT / "config.yaml")))
    env = {k: v for k, v in os.environ.items()
           if k not in (*site.OFFLINE, "PREFBIAS_REQUIRE_GPUS", "TRITON_CACHE_DIR")}
    env["TMPDIR"] = str(node)

    def snakemake(*args):
        proc = subprocess.run([str(BIN / "snakemake"), "--cores", "1", *args], cwd=wd,
                              env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for target in ("reward_winrate", "sycophancy_grade"):
        snakemake("--mode", "remote", "--target-jobs", f"{target}:")
    root = node.resolve() / f"prefbias-cache-{os.getuid()}"
    assert (wd / "gpu.txt").read_text().strip() == f"1,1,1,2,{root}/triton"
    assert (wd / "cpu.txt").read_text().strip() == "1,none"
    (wd / "cpu.txt").unlink()
    snakemake("cpu.txt")
    assert (wd / "cpu.txt").read_text().strip() == "online,none"


def test_job_rules_from_the_command_line():
    argv = ["snakemake", "--target-jobs", "train_orpo:model=orpo-a-s0", "judge:judge=j,x=1",
            "--mode", "remote"]
    assert hook.job_rules(SimpleNamespace(dag_settings=None), argv) == ["judge", "train_orpo"]
    assert hook.job_rules(SimpleNamespace(), ["snakemake", "--target-jobs=generate:"]) == [
        "generate"]


# ---------------------------------------------------------------------------------------------
def _closed_network() -> list[str]:
    """A command prefix that runs its command in a new, empty network namespace."""
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        if shutil.which(prefix[0]) and subprocess.run([*prefix, "true"],
                                                      capture_output=True).returncode == 0:
            return prefix
    pytest.skip("no network namespace here (unshare -n needs root, unshare -rn user namespaces)")


#: the demo plans no generate/judge/reward job on its random-weight stand-ins
#: (report.skip_random_stand_in_evals): this test evaluates them, to run one job of every GPU rule
EVAL_STAND_INS = "configs/test-eval-stand-ins.yaml"
TINY = ("--configfile", "configs/tiny.yaml", EVAL_STAND_INS)


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / EVAL_STAND_INS).write_text("report: {skip_random_stand_in_evals: false}\n")
    return dest


def _one_job_per_rule(repo: Path, env: dict[str, str], rules: list[str]) -> dict[str, str]:
    """``{rule: first output of one of its jobs}`` in a dry run of the tiny workflow (a dry run
    with ``--until`` exits 1 in Snakemake 9.27: the whole DAG is read instead)."""
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "2", *TINY], cwd=repo,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # a job block ("rule X:" + "    output: a, b") or a later job's line (" - X: a, b")
    jobs = re.finditer(r"^(?:local)?rule (\w+):\n(?:    (?!output:).*\n)*    output: ([^,\n]+)"
                       r"|^ - (\w+): ([^,\n]+)", proc.stdout, re.M)
    found: dict[str, list[str]] = {}
    for m in jobs:
        rule, output = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if rule in rules:
            found.setdefault(rule, []).append(output.strip())
    # the cheapest: nothing styled (that needs every style rewrite first); ORPO models first
    # (sycophancy then evaluates the ORPO model that train_orpo trains)
    styled = re.compile(r"dpo-(?!ultrafeedback)|ultrafeedback-(?!s\d)")
    return {r: min(outs, key=lambda o: (bool(styled.search(o)), "orpo-" not in o, o))
            for r, outs in found.items()}


@pytest.mark.slow
@pytest.mark.dag
def test_every_gpu_rule_runs_with_the_network_closed(paper_config, tiny_config,
                                                     tmp_path_factory):
    """One job of every GPU rule of the tiny workflow (and the jobs it needs), in a closed
    network namespace, with the compute-node environment of those rules."""
    if not (ROOT / ".venv-helm" / "bin" / "helm-run").exists():
        pytest.fail("HELM environment absent: make test creates .venv-helm")
    closed = _closed_network()
    probe = subprocess.run([*closed, sys.executable, "-c",
                            "import socket; socket.create_connection(('1.1.1.1', 53), 5)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    node_tmp = tmp_path_factory.mktemp("node-tmp")
    rules = gpu_rules(paper_config)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(site.node_job_environment(tiny_config, job_gpus(tiny_config, rules),
                                         {"TMPDIR": str(node_tmp)},
                                         cwd=repo),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    targets = _one_job_per_rule(repo, env, rules)
    assert sorted(targets) == rules
    cmd = [*closed, str(BIN / "snakemake"), "--cores", "2", *TINY,
           "--show-failed-logs", *targets.values()]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-8000:]
    bench = repo / "results" / "tiny" / "benchmarks"
    for rule in rules:
        assert any((bench / rule).glob("*.tsv")), f"no {rule} job ran"
    for name in ("vllm", "triton", "torchinductor", "hf_datasets"):
        # tests/ holds a stand-in vllm package (tests/support/fake_vllm): sources, not caches
        found = [p for p in repo.rglob(name) if "tests" not in p.relative_to(repo).parts]
        assert not found, f"a {name} cache in the repository: {found}"
