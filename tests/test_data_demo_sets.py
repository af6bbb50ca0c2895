"""The demo's sycophancy sets (hand-made + real) and its real BCT subset: schema, labels, balance.

Every file is read by the pipeline's own parsers (prefbias.data.sycophancy_sets, prefbias.data.saa)
with the config's templates, so a row that drifts from sycophancy-eval's schema fails here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict

import pytest

from prefbias.data.saa import analyse
from prefbias.data.sycophancy_sets import answer_rows, are_you_sure_rows
from prefbias.evaluation.grading import alias_match

# sha256 of the shipped files (README.md of the fixtures folder lists the same values)
SHA = {
    "sycophancy_eval/answer_demo.jsonl":
        "561efa42abcdd2f7d66a7e63b4d12c05c9fdc6fd6085cd57603b883a9caa1c8f",
    "sycophancy_eval/are_you_sure_demo.jsonl":
        "61e4961422e0374225d54fe9827c7362c607daafa79c102f54f8336a98ca5c7b",
    "cot_transparency/bct_non_cot.first300.jsonl":
        "f532a38d2a5fbe8d1d8be842c57a14369d030d23f737b36196f98357c5d6a3a9",
    "cot_transparency/control_non_cot.first300.jsonl":
        "4c2d778a8ab2de2b80f677fab6ae06c159ba1391dd8b73e96a8940987a4f03f6",
}


@pytest.fixture(scope="module")
def data_dir(repo_root):
    return repo_root / "tests" / "fixtures" / "data"


@pytest.mark.parametrize("name", sorted(SHA))
def test_files_match_their_recorded_sha256(data_dir, name):
    assert hashlib.sha256((data_dir / name).read_bytes()).hexdigest() == SHA[name]


def test_answer_demo_rows(data_dir, paper_config):
    templates = paper_config["sycophancy"]["answer_templates"]
    path = data_dir / "sycophancy_eval" / "answer_demo.jsonl"
    rows = answer_rows(path, templates)
    assert len(rows) == 4 * 121
    # the first 4 rows are the real sycophancy-eval rows, byte-identical to the 16-row fixture's
    real = (data_dir / "sycophancy_eval" / "answer.jsonl").read_text().splitlines()[:4]
    assert path.read_text().splitlines()[:4] == real
    assert {r["dataset"] for r in rows[:4]} == {"trivia_qa"}
    assert {r["dataset"] for r in rows[4:]} == {"handmade_trivia"}  # labelled hand-made
    by_q = defaultdict(list)
    for r in rows:
        by_q[r["question_id"]].append(r)
    assert len(by_q) == 121
    for q in by_q.values():  # each question under the 4 templates, in upstream's order
        assert [r["template"] for r in q] == list(templates)
        r = q[0]
        # the correct answer is graded correct, the suggested incorrect one is not: the
        # think_incorrect template cannot be graded correct by echoing the suggestion
        assert alias_match(r["correct_answer"], r["aliases"]), r["question"]
        assert not alias_match(r["incorrect_answer"], r["aliases"]), r["question"]
    for line in path.read_text().splitlines()[4:]:
        raw = json.loads(line)
        assert set(raw) == {"prompt", "base", "metadata"}
        assert set(raw["base"]) == {"dataset", "question", "answer", "correct_answer",
                                    "incorrect_answer"}
        assert raw["prompt"][0]["type"] == "human" and len(raw["prompt"]) == 1
        assert raw["prompt"][0]["content"] == raw["metadata"]["prompt_template"].format(
            **raw["base"])


def test_are_you_sure_demo_rows(data_dir):
    path = data_dir / "sycophancy_eval" / "are_you_sure_demo.jsonl"
    rows = are_you_sure_rows(path)
    assert Counter(r["dataset"] for r in rows) == {"handmade_trivia": 40, "handmade_mc": 20}
    free = [r for r in rows if r["dataset"] == "handmade_trivia"]
    mc = [r for r in rows if r["dataset"] == "handmade_mc"]
    for r in free:  # free-form: the bare question, graded by its aliases
        assert r["correct_letter"] is None and r["messages"] == [
            {"role": "user", "content": r["question"]}]
        assert alias_match(r["correct_answer"], r["aliases"])
    assert Counter(r["correct_letter"] for r in mc) == {"A": 5, "B": 5, "C": 5, "D": 5}
    for r in mc:
        assert r["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
        assert r["letters"] == "ABCD"
        assert r["messages"][0]["content"].endswith(
            "Please answer just with the letter of the correct answer.")
    for line in path.read_text().splitlines():
        base = json.loads(line)["base"]
        if base["dataset"] == "handmade_trivia":
            assert set(base) == {"dataset", "question", "answer", "correct_answer",
                                 "incorrect_answer"}
            continue
        assert set(base) == {"dataset", "question", "correct_letter", "letters", "answers",
                             "answers_list"}
        assert base["answers"] == "\n".join(
            f"({x}){o}" for x, o in zip(base["letters"], base["answers_list"], strict=True))


def test_bct_subset_is_the_real_prefix_and_feeds_saa(data_dir):
    ct = data_dir / "cot_transparency"
    bct, control = ct / "bct_non_cot.first300.jsonl", ct / "control_non_cot.first300.jsonl"
    # byte-exact prefix of the real files: its first 20 lines are the 20-row fixtures
    assert bct.read_bytes().startswith((ct / "bct_non_cot.jsonl").read_bytes())
    assert control.read_bytes().startswith((ct / "control_non_cot.jsonl").read_bytes())
    rows, stats = analyse(bct, control, seed=42)
    assert stats["bct_rows"] == 300
    assert (stats["available_correct"], stats["available_incorrect"]) == (84, 213)
    assert stats["skipped"]["unparseable_target"] == 3
    assert {r["answer_format"] for r in rows} == {"prefill", "full"}
