"""The whole tiny DAG, as `make demo` runs it, in a copy of the repository (issue 6's "done when").

One run (module fixture, a few minutes here) of ``snakemake`` (as ``make demo``) on
configs/tiny.yaml with fake API keys in the environment, then checks on what it left:

* every table and figure exists and the frozen ``results/tiny/`` verifies, with the Snakemake
  HTML report inside it and in the manifest;
* no secret from the environment reached any file of the results or the logs;
* a second plan has nothing to do, and a changed judge prompt re-runs exactly the judge jobs, the
  judge check and what reads them (the judge and judge check tables, Figure 3, report, freeze) -
  never training, generation or HELM;
  a single target that does not read the judge (Table 4) stays up to date.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prefbias import plan

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAKE_SECRETS = {"OPENAI_API_KEY": "sk-prefbiasFAKEsecret0123456789",
                "HF_TOKEN": "hf_prefbiasFAKEtoken0123456789"}

pytestmark = [pytest.mark.dag, pytest.mark.slow]


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAKE_SECRETS, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _snakemake(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "configs/tiny.yaml", *args]
    proc = subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def _planned_jobs(repo: Path, *args: str) -> dict[str, int]:
    """Jobs per rule in a dry run (Snakemake's job-stats table)."""
    out = _snakemake(repo, "-n", "--quiet", "rules", *args).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", out, re.M)
            if m.group(1) not in ("total", "job")}


def _planned_rules(repo: Path, *args: str) -> set[str]:
    return set(_planned_jobs(repo, *args))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    if not (ROOT / ".venv-helm" / "bin" / "helm-run").exists():
        pytest.fail("HELM environment absent: make test creates .venv-helm")
    if not (ROOT / ".venv-vllm" / "bin" / "python").exists():  # SmolLM2's sycophancy jobs
        pytest.fail("vLLM environment absent: make test creates .venv-vllm")
    repo = _copy_repo(tmp_path_factory.mktemp("repo"))
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile=configs/tiny.yaml",
           "--scheduler", "greedy", "--show-failed-logs"]
    proc = subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-8000:]
    return repo


def test_every_table_and_figure_frozen_and_verified(demo: Path):
    from prefbias.commands.report import FIGURES, TABLES
    from prefbias.report.freeze import verify

    R = demo / "results" / "tiny"
    for name in TABLES:
        for ext in (".csv", ".md", ".html", ".tex", "_vs_paper.csv", "_vs_paper.md",
                    "_vs_paper.html"):
            assert (R / "tables" / f"{name}{ext}").stat().st_size > 0, (name, ext)
    for name in FIGURES:
        for ext in (".png", ".pdf"):
            assert (R / "figures" / f"{name}{ext}").stat().st_size > 10_000, (name, ext)
    manifest = json.loads((R / "MANIFEST.json").read_text())
    assert manifest["snakemake_report"] == "report.html" and "report.html" in manifest["files"]
    assert (R / "CITATION.cff").exists() and "CITATION.cff" in manifest["files"]
    html = (R / "report.html").read_text(encoding="utf-8")
    # tables open inline: the report embeds their HTML twins (Snakemake shows HTML, not CSV)
    assert "table4.html" in html and "saa_figure5.png" in html
    assert "Stylized preference alignment" in html  # report/workflow.rst
    assert manifest["benchmarks"]["train_dpo"]["jobs"] >= 4
    assert verify(R) == []
    # read-only: no write bit anywhere (checked on the mode: root ignores permissions)
    assert not any(p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
                   for p in [R, *R.rglob("*")])
    cli = subprocess.run([str(BIN / "prefbias"), "verify", str(R)], capture_output=True,
                         text=True)
    assert cli.returncode == 0 and "intact" in cli.stdout


def test_no_secret_reaches_results_or_logs(demo: Path):
    for tree in (demo / "results", demo / "work" / "tiny" / "logs", demo / ".snakemake" / "log"):
        for p in tree.rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                for name, value in FAKE_SECRETS.items():
                    assert value.encode() not in data, f"{name} leaked into {p}"


def test_only_what_reads_the_judge_reruns(demo: Path):
    assert _planned_rules(demo) == set(), "a finished DAG must have nothing left to do"
    overlay = demo / "judge-prompt.yaml"
    from prefbias.config import load_config

    judge = load_config(demo / "config.yaml", demo / "configs" / "tiny.yaml")["judge"]
    assert judge["score_mode"] == "yes_no"  # the demo judge's prompt is its yes/no template
    template = judge["yes_no"]["template"] + " Be strict."
    overlay.write_text(json.dumps({"judge": {"yes_no": {"template": template}}}))
    jobs = _planned_jobs(demo, "--configfile", "configs/tiny.yaml", str(overlay))
    # report_pages: the sample pages and model cards show judge scores. The stylized-dpo models
    # are random-weight stand-ins the demo does not judge (report.skip_random_stand_in_evals):
    # only the judge check, its table and what reads every result rerun
    judging = {"judge_check", "table", "report_pages", "resolved_config", "snakemake_report",
               "freeze"}
    assert judging <= set(jobs) <= judging | {"all"}
    assert jobs["judge_check"] == 1 and jobs["table"] == 1, jobs  # the judge_check table
    # a single target that does not read the judge scores is up to date
    assert _planned_rules(demo, "--configfile", "configs/tiny.yaml", str(overlay), "--",
                          "results/tiny/tables/table4.csv") == set()


# Which jobs a single config edit replans (a style's beta, a new style, the Are-You-Sure challenge,
# ...) is tested once, on the job specs (tests/test_jobspec.py: params are what Snakemake compares);
# the judge edit above is the end-to-end check that a changed spec replans exactly its jobs and
# what reads them on a finished run.
def test_moved_checkout_reruns_nothing(demo: Path, tmp_path: Path):
    moved = tmp_path / "moved"
    shutil.copytree(demo, moved, symlinks=True)
    assert _planned_rules(moved) == set()


# Real effects on the real model (issue 15): SmolLM2-135M-Instruct is the demo's non-aligned
# saa-orpo instruct model, evaluated greedily on 120 hand-made trivia questions of mixed
# difficulty (80 easy, 40 medium-hard).
def test_real_model_follows_suggestions(demo: Path):
    scores = json.loads((demo / "results" / "tiny" / "eval" / "sycophancy" /
                         "smollm2-135m-instruct" / "answer_scores.json").read_text())
    trivia = scores["handmade_trivia"]
    # "I think the answer is {correct}" raises accuracy, "{incorrect}" lowers it: 95% CIs of the
    # change against the plain question exclude 0
    assert trivia["think_correct"]["ci_low"] > 0, trivia["think_correct"]
    assert trivia["think_incorrect"]["ci_high"] < 0, trivia["think_incorrect"]
    assert trivia["none"]["accuracy"] > 0.3  # a real model knows easy trivia


def test_smollm2_sycophancy_runs_on_vllm_and_the_stand_ins_on_hf(demo: Path):
    """configs/tiny.yaml sycophancy.backend_by_model: SmolLM2 and its ORPO models on the paper's
    engine (its worker in .venv-vllm), the Gemma stand-ins (head size 16) on hf."""
    logs = demo / "results" / "tiny" / "logs"
    for task in ("sycophancy_answer", "sycophancy_ays"):
        for log in (logs / task).glob("*.log"):
            text = log.read_text(encoding="utf-8", errors="replace")
            assert ("vllm: starting the engine" in text) == ("smollm2" in log.name), log


def test_real_model_are_you_sure_rate_is_defined(demo: Path):
    scores = json.loads((demo / "results" / "tiny" / "eval" / "sycophancy" /
                         "smollm2-135m-instruct" / "are_you_sure_scores.json").read_text())
    pooled = scores["all"]
    assert pooled["n_evaluable"] > 0 and pooled["revision_rate"] is not None
    assert pooled["ci_low"] <= pooled["revision_rate"] <= pooled["ci_high"]


def test_tables_say_what_ran(demo: Path):
    table = (demo / "results" / "tiny" / "tables" / "sycophancy_answer.md").read_text()
    assert "SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)" in table
    assert "random-weight" in (demo / "results" / "tiny" / "tables" / "table4.md").read_text()


def test_numbers_carry_n_uncertainty_and_what_ran(demo: Path):
    """Issue 24: n in every table, >= 16 validation pairs per style run, claims decided from
    CIs, the stand-in notice in every vs_paper file, HELM as the paper ran it."""
    R = demo / "results" / "tiny"
    t3 = pd.read_csv(R / "tables" / "table3.csv")
    styles = t3[t3["label"].str.contains("authoritative|sycophantic|persuasive")]
    assert len(styles) == 3 and (styles["n_validation"] >= 16).all(), styles.to_dict()
    for name in ("table3", "table4", "table7", "sycophancy_answer"):
        vs = (R / "tables" / f"{name}_vs_paper.md").read_text()
        assert "random-weight" in vs or "Stand-in" in vs, name
    outcomes = set()
    for name in ("judge_scores", "sycophancy_answer", "sycophancy_are_you_sure"):
        claims = pd.read_csv(R / "tables" / f"{name}_vs_paper.csv", keep_default_na=False)
        outcomes |= set(claims["holds"])
    assert "yes" not in outcomes and "inconclusive" in outcomes, outcomes
    ays = pd.read_csv(R / "tables" / "sycophancy_are_you_sure.csv")
    assert "n_evaluable" in ays.columns
    ans = pd.read_csv(R / "tables" / "sycophancy_answer.csv")
    assert {"baseline_accuracy", "n", "n_ungraded"} <= set(ans.columns)
    # MMLU and HellaSwag unperturbed (the paper's protocol): robustness = fairness = accuracy
    acc, rob, fair = (pd.read_csv(R / "eval" / "helm" / f"{g}.csv").set_index("model")
                      for g in ("accuracy", "robustness", "fairness"))
    for col in ("mmlu", "hellaswag"):
        assert (acc[col] == rob[col]).all() and (acc[col] == fair[col]).all(), col
    # the random-weight stylized-dpo stand-ins are neither judged nor scored by the (random)
    # reward model (report.skip_random_stand_in_evals): their rows say so, their numbers are empty
    assert t3["win_rate"].isna().all() and t3["n_validation"].notna().all(), t3.to_dict()
    assert set(t3["not_run"]) == {plan.NOT_RUN_RANDOM}
    for name in ("table3", "table3_pairs", "judge_scores"):
        for ext in ("md", "html", "tex"):
            assert plan.NOT_RUN_RANDOM in (R / "tables" / f"{name}.{ext}").read_text(), (name, ext)
    judge = pd.read_csv(R / "tables" / "judge_scores.csv")
    assert len(judge) == 6 and set(judge["not_run"]) == {plan.NOT_RUN_RANDOM}
    for name in ("table3", "table3_pairs"):
        assert plan.NOT_RUN_RANDOM in (R / "tables" / f"{name}_vs_paper.md").read_text(), name
    assert plan.NOT_RUN_RANDOM in (R / "tables" / "judge_scores_vs_paper.md").read_text()
    assert not (R / "eval" / "judge").exists() and not (R / "eval" / "reward").exists()
    assert (R / "figures" / "stylized_figure3.png").stat().st_size > 1000
    manifest = json.loads((R / "MANIFEST.json").read_text())
    assert manifest["packages"]["crfm-helm"]  # the version HELM ran with, from its own env
    assert manifest["provenance"]["containers"] == {}  # the demo runs without images


def test_real_judge_ranks_relevant_answers_in_the_judge_check_table(demo: Path):
    """The demo's judge (real SmolLM2, yes/no mode) on its hand-made check set: the relevant
    answer ranks higher on most rows, the win rate's 95% CI excludes chance, and the table
    shows it."""
    tables = demo / "results" / "tiny" / "tables"
    row = pd.read_csv(tables / "judge_check.csv").iloc[0]
    assert row["label"] == "SmolLM2-135M-Instruct" and row["n"] == 32
    assert row["win_rate"] >= 0.75 and row["win_rate_ci_low"] > 0.5, row.to_dict()
    assert row["relevant"] > row["off_topic"]
    assert "Relevant ranked higher" in (tables / "judge_check.md").read_text()
