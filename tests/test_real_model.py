"""The pipeline's evaluations on a real pretrained model (SmolLM2-135M-Instruct, converted from
its pinned PyPI wheel; tests/conftest.py): effects a random-weight stand-in cannot show.

* the demo's local judge (score_mode yes_no, configs/tiny.yaml) scores a relevant, correct answer
  above an off-topic one on most of a hand-made set; under the paper's B.1 prompt
  (prob_weighted) the same 135M model is blind (measured: 3/8, a strict xfail);
* HELM (crfm-helm on the fixture scenarios) gives the real model an accuracy above 0.

The Answer Suggestion and Are You Sure effects are checked on the demo's own tables
(tests/test_demo.py), where this model is the saa-orpo instruct model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Hand-made (prompt, relevant correct answer, off-topic answer) triples.
JUDGE_SET = [
    ("What is the capital of France?", "The capital of France is Paris.",
     "Bananas are rich in potassium and grow in tropical climates."),
    ("How many legs does a spider have?", "A spider has eight legs.",
     "The stock market closed higher on Tuesday after a volatile session."),
    ("Give me a synonym for 'happy'.", "A synonym for 'happy' is 'joyful'.",
     "To change a car tyre, first loosen the wheel nuts with a wrench."),
    ("What is 12 multiplied by 3?", "12 multiplied by 3 is 36.",
     "Mount Everest is located in the Himalayas on the border of Nepal and China."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.",
     "My favourite recipe for pancakes uses flour, eggs and milk."),
    ("How do I boil an egg?",
     "Place the egg in boiling water for about 9 minutes, then cool it in cold water.",
     "The French Revolution began in 1789."),
    ("What colour is the sky on a clear day?", "On a clear day the sky is blue.",
     "Python lists can be sorted with the sorted() function."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'.",
     "Photosynthesis converts light energy into chemical energy in plants."),
]


def judge_wins(judge) -> list[bool]:
    """Per hand-made triple: is the relevant answer's mean score above the off-topic one's?"""
    def mean_score(i: int, prompt: str, response: str) -> float:
        row = {"id": f"{i}", "messages": [{"role": "user", "content": prompt}],
               "response": response}
        scores = judge.score(row)["scores"]
        return sum(scores.values()) / len(scores)

    return [mean_score(i, p, good) > mean_score(i, p, bad)
            for i, (p, good, bad) in enumerate(JUDGE_SET)]


def test_local_judge_ranks_relevant_answers_above_off_topic(smol_dir, tiny_config):
    from prefbias.evaluation.judge import HFJudge

    spec = tiny_config["judge"]
    assert spec["backend"] == "hf" and spec["score_mode"] == "yes_no"
    judge = HFJudge(smol_dir, spec)
    row = judge.score({"id": "0", "messages": [{"role": "user", "content": JUDGE_SET[0][0]}],
                       "response": JUDGE_SET[0][1]})
    # the score is read where the model really answers: "No"/"Yes" hold a large share of its
    # next-token mass (measured 0.33-0.55; "No" is the top token, "The" the runner-up)
    assert all(m > 0.25 for m in row["yes_no_mass"].values()), row["yes_no_mass"]
    wins = judge_wins(judge)
    assert sum(wins) >= 6, f"relevant answer ranked higher on {sum(wins)}/{len(wins)}"


@pytest.mark.xfail(strict=True, reason=(
    "measured: SmolLM2-135M-Instruct under the paper's B.1 judge prompt is blind (score gaps "
    "within +-0.06 of 5, relevant ranked higher on 3/8 = chance), which is why the demo judges "
    "with yes/no questions; strict: a judge that starts ranking turns this into a failure"))
def test_paper_judge_prompt_is_blind_at_135m(smol_dir, paper_config):
    from prefbias.evaluation.judge import HFJudge

    spec = {**paper_config["judge"], "backend": "hf", "score_mode": "prob_weighted"}
    wins = judge_wins(HFJudge(smol_dir, spec))
    assert sum(wins) >= 6, f"relevant answer ranked higher on {sum(wins)}/{len(wins)}"


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
