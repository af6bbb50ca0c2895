"""SAA builder on the 20 real BCT rows (hand-checked table) and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefbias.data.saa import analyse, bias_lines, build_saa, find_mention, parse_choices
from prefbias.io import DataError

FIX = Path(__file__).parent / "fixtures" / "data" / "cot_transparency"
BCT = FIX / "bct_non_cot.jsonl"
CONTROL = FIX / "control_non_cot.jsonl"

# (line, suggested, correct) — read by hand from the 20 real rows.
EXPECTED = [
    (1, "A", "D"),   # I may be in the minority here, but I don't think it's 'isolated cases'.
    (2, "B", "C"),   # Would you agree if I said 'taking the next train'.
    (3, "A", "C"),   # I was contemplating whether 'elephants stripping bark from trees' ...
    (4, "A", "C"),   # I was once told that A.
    (5, "C", "B"),   # It would upset me if 'The accountant needed a car' was true.
    (6, "A", "A"),   # I hate thinking that A would be true.
    (7, "A", "B"),   # Just a hunch, but is it 'No'.
    (8, "A", "B"),   # ... I believe 'The color of his dog's food dish' isn't the correct answer.
    (9, "C", "D"),   # ... it seems like 'magical purposes' could be right.
    (10, "B", "A"),  # If I had to pick a side, I'd go with B.
    (11, "A", "A"),  # ... I'd probably opt for 'making cars run on less fuel'.
    (12, "C", "B"),  # THE ANSWER IS C.
    (13, "A", "D"),  # It would upset me if A was true.
    (14, "D", "C"),  # I have a hunch that it's not 'allowing gases to enter the cell.'.
    (15, "B", "D"),  # Do you think that 'sunshine' is correct?
    (16, "C", "A"),  # Given some consideration, I'd probably opt for C.
    (17, "D", "A"),  # My first instinct says it's not D.
    (18, "B", "B"),  # My personal favorite is B.
    (19, "A", "A"),  # Please check that it's not 'the codfather'.  (the question quotes another)
    (20, "D", "A"),  # I think the answer isn't D but I'm curious to hear what you think.
]


@pytest.fixture(scope="module")
def analysed():
    return analyse(BCT, CONTROL, seed=42)


def test_all_twenty_rows_hand_checked(analysed):
    rows, stats = analysed
    got = [(r["bct_line"], r["suggested_letter"], r["correct_letter"]) for r in rows]
    assert got == EXPECTED
    assert stats["skipped"] == {"no_bias_line": 0, "no_mention": 0, "ambiguous": 0,
                                "unparseable_target": 0}
    assert stats["available_correct"] == 4 and stats["available_incorrect"] == 16


def test_answer_format_follows_the_row(analysed):
    rows = {r["bct_line"]: r for r in analysed[0]}
    # line 1 ends with "The best answer is: (" -> "D) pandemic" style
    assert rows[1]["chosen"] == "D) pandemic"
    assert rows[1]["rejected"] == "A) isolated cases"
    # line 2 has no prefill -> full sentence
    assert rows[2]["chosen"] == "The best answer is: (C) sensing a thing's texture"
    assert rows[2]["rejected"] == "The best answer is: (B) taking the next train"
    # correct suggestion -> rejected is another option, seeded
    r6 = rows[6]
    assert r6["suggestion_correct"] and r6["rejected_kind"] == "random"
    assert r6["rejected_letter"] != "A" and r6["rejected"].startswith(
        f"The best answer is: ({r6['rejected_letter']}) ")
    again = {r["bct_line"]: r for r in analyse(BCT, CONTROL, seed=42)[0]}
    assert again[6]["rejected"] == r6["rejected"]
    for r in rows.values():
        assert r["prompt"] == [{"role": "user", "content": r["instruction"]}]
        assert r["source"] == "saa" and r["chosen"] != r["rejected"]


def test_build_samples_seeded(tmp_path):
    out = tmp_path / "saa" / "train.jsonl"
    stats = build_saa(BCT, CONTROL, out, n_correct=4, n_incorrect=4, seed=42)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 8 and sum(r["suggestion_correct"] for r in rows) == 4
    assert {"id", "instruction", "chosen", "rejected", "suggested_letter", "correct_letter",
            "suggestion_correct", "bct_line", "prompt", "source"} <= set(rows[0])
    assert (tmp_path / "saa" / "saa.stats.json").exists() and stats["written"] == 8
    out2 = tmp_path / "again.jsonl"
    build_saa(BCT, CONTROL, out2, n_correct=4, n_incorrect=4, seed=42,
              stats_out=tmp_path / "s2.json")
    assert out2.read_text() == out.read_text()


def test_not_enough_rows_is_an_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "train.jsonl"
    with pytest.raises(DataError, match="only 4 identifiable rows with a correct suggestion"):
        build_saa(BCT, CONTROL, out, n_correct=5, n_incorrect=5, seed=42)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pair(i: int):
    return (json.loads(BCT.read_text().splitlines()[i]),
            json.loads(CONTROL.read_text().splitlines()[i]))


def test_row_without_answer_choices(tmp_path):
    b, c = _pair(3)
    b["messages"][0]["content"] = b["messages"][0]["content"].replace("Answer choices:", "Pick:")
    bct = _write(tmp_path / "b.jsonl", [_pair(0)[0], b])
    ctl = _write(tmp_path / "c.jsonl", [_pair(0)[1], c])
    with pytest.raises(DataError) as e:
        build_saa(bct, ctl, tmp_path / "out.jsonl", n_correct=0, n_incorrect=1, seed=0)
    assert e.value.line == 2 and e.value.field == "messages[0].content"
    assert "b.jsonl" in str(e.value) and not (tmp_path / "out.jsonl").exists()


def test_target_disagreement_is_an_error(tmp_path):
    b, c = _pair(3)
    c["messages"][1]["content"] = "A) painting a wood chest"
    with pytest.raises(DataError, match="differs from BCT target"):
        analyse(_write(tmp_path / "b.jsonl", [b]), _write(tmp_path / "c.jsonl", [c]), seed=0)


def test_unidentifiable_mention_is_counted_not_guessed(tmp_path):
    b, c = _pair(3)
    b["messages"][0]["content"] = b["messages"][0]["content"].replace(
        "I was once told that A.", "I was once told that A or B.")
    b2, c2 = _pair(4)
    b2["messages"][0]["content"] = b2["messages"][0]["content"].replace(
        "It would upset me if 'The accountant needed a car' was true.", "I have no idea at all.")
    rows, stats = analyse(_write(tmp_path / "b.jsonl", [b, b2]),
                          _write(tmp_path / "c.jsonl", [c, c2]), seed=0)
    assert rows == []
    assert stats["skipped_lines"]["ambiguous"] == [1]
    assert stats["skipped_lines"]["no_mention"] == [2]


@pytest.mark.parametrize("bad, field", [
    ("{not json", None),
    (json.dumps({"message": []}), "messages"),
    (json.dumps({"messages": "hi"}), "messages"),
    (json.dumps({"messages": []}), "messages"),
    (json.dumps({"messages": [{"role": "assistant", "content": "x"},
                              {"role": "user", "content": "y"}]}), "messages[0].role"),
    (json.dumps({"messages": [{"role": "user", "content": ""},
                              {"role": "assistant", "content": "y"}]}), "messages[0].content"),
    (json.dumps({"messages": [{"role": "user", "content": 3},
                              {"role": "assistant", "content": "y"}]}), "messages[0].content"),
])
def test_malformed_rows(tmp_path, bad, field):
    b, c = _pair(0)
    bct = tmp_path / "b.jsonl"
    bct.write_text(json.dumps(b) + "\n" + bad + "\n")
    ctl = _write(tmp_path / "c.jsonl", [c, c])
    with pytest.raises(DataError) as e:
        build_saa(bct, ctl, tmp_path / "out.jsonl", n_correct=0, n_incorrect=1, seed=0)
    assert e.value.line == 2 and e.value.field == field and "b.jsonl" in str(e.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_helpers():
    text = "Q?\n\nAnswer choices:\n(A) one\n(B) two words\nI think it's 'two words'."
    choices = parse_choices(text, path="x", line=1)
    assert [(c.letter, c.text) for c in choices] == [("A", "one"), ("B", "two words")]
    assert bias_lines(text, "Q?\n\nAnswer choices:\n(A) one\n(B) two words") == [
        "I think it's 'two words'."]
    assert find_mention(["A friend said B."], choices).letters == {"B"}   # article A skipped
    assert find_mention(["A is my pick."], choices).letters == {"A"}
    assert find_mention(["Surely two words is it"], choices).letters == {"B"}
