"""The pipeline's evaluations on a real pretrained model (SmolLM2-135M-Instruct, converted from
its pinned PyPI wheel; tests/conftest.py): effects a random-weight stand-in cannot show.

* the demo's local judge (score_mode yes_no, configs/tiny.yaml) scores a relevant, correct answer
  above an off-topic one on most of the held-out rows of the demo's judge check set; under the
  paper's B.1 prompt (prob_weighted) the same 135M model is blind (measured: 3/8, a strict xfail);
* HELM (crfm-helm on the fixture scenarios) gives the real model an accuracy above 0.

The Answer Suggestion and Are You Sure effects are checked on the demo's own tables
(tests/test_demo.py), where this model is the saa-orpo instruct model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the real SmolLM2-135M-Instruct

# Hand-made (prompt, relevant answer, off-topic answer) rows: the demo's judge check set. The 12
# "dev" rows are those the demo judge's yes/no questions were chosen on; the 20 "held_out" rows
# were not (tests/fixtures/data/README.md).
JUDGE_CHECK = ROOT / "tests/fixtures/data/judge_check/pairs.jsonl"


def held_out(tmp_path: Path) -> Path:
    from prefbias.io import read_jsonl, write_jsonl

    out = tmp_path / "held_out.jsonl"
    write_jsonl(out, [r for r in read_jsonl(JUDGE_CHECK) if r["split"] == "held_out"])
    return out


def test_local_judge_ranks_relevant_answers_above_off_topic(smol_dir, tiny_config, tmp_path):
    from prefbias.evaluation.judge_check import run_judge_check
    from prefbias.io import read_jsonl

    spec = tiny_config["judge"]
    assert spec["backend"] == "hf" and spec["score_mode"] == "yes_no"
    summ = run_judge_check(spec, held_out(tmp_path), tmp_path / "rows.jsonl",
                           tmp_path / "s.json", model_dir=smol_dir)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    # the relevant answer ranks higher on most rows, and the CI of the win rate excludes chance
    assert summ["win_rate"]["n"] == 20 and summ["win_rate"]["mean"] >= 0.75, summ
    assert summ["win_rate"]["ci_low"] > 0.5, summ
    assert summ["relevant"]["mean"] > summ["off_topic"]["mean"]
    assert all(v is not None for r in rows for v in r["relevant_scores"].values())


def test_yes_no_judge_reads_a_real_answer_distribution(smol_dir, tiny_config):
    from prefbias.evaluation.judge import HFJudge

    judge = HFJudge(smol_dir, tiny_config["judge"])
    row = judge.score({"id": "0", "messages": [{"role": "user", "content":
                                                "What is the capital of France?"}],
                       "response": "The capital of France is Paris."})
    # the score is read where the model really answers: "No"/"Yes" hold a large share of its
    # next-token mass (measured 0.33-0.55; "No" is the top token, "The" the runner-up)
    assert all(m > 0.25 for m in row["yes_no_mass"].values()), row["yes_no_mass"]


@pytest.mark.xfail(strict=True, reason=(
    "measured: SmolLM2-135M-Instruct under the paper's B.1 judge prompt is blind (score gaps "
    "within +-0.06 of 5, relevant ranked higher on 3 of the first 8 held-out rows = chance), "
    "which is why the demo judges with yes/no questions; strict: a judge that starts ranking "
    "turns this into a failure"))
def test_paper_judge_prompt_is_blind_at_135m(smol_dir, paper_config, tmp_path):
    from prefbias.evaluation.judge_check import run_judge_check
    from prefbias.io import read_jsonl, write_jsonl

    first8 = tmp_path / "first8.jsonl"
    write_jsonl(first8, read_jsonl(held_out(tmp_path))[:8])
    spec = {**paper_config["judge"], "backend": "hf", "score_mode": "prob_weighted"}
    summ = run_judge_check(spec, first8, tmp_path / "rows.jsonl", tmp_path / "s.json",
                           model_dir=smol_dir)
    assert summ["win_rate"]["mean"] >= 0.75, summ


@pytest.mark.helm
def test_helm_accuracy_of_the_real_model_is_above_zero(smol_dir, tiny_config, tmp_path):
    from prefbias.evaluation import helm_run

    try:
        helm_bin = helm_run.helm_bin_dir({})
    except helm_run.HelmError as e:
        pytest.skip(str(e))
    spec = {**tiny_config["helm"], "max_eval_instances": 8, "python": str(helm_bin)}
    scenarios = ["boolq", "mmlu"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = helm_run.helm_run(model_dir=smol_dir, model_name="smollm2-135m-instruct",
                                scenario=scenarios, spec=spec, outdir=tmp_path / "helm",
                                stats_path=[tmp_path / f"{s}.json" for s in scenarios],
                                fixtures=ROOT / "tests" / "fixtures" / "helm")
    accuracy = {s: results[s]["accuracy"] for s in scenarios}
    assert max(accuracy.values()) > 0, accuracy
