"""Suggestion-Assessment Alignment (SAA) data from the BCT non-CoT dump (saa-orpo §4.1, App. B).

For every BCT row (``{"messages": [user, assistant]}``) and its control twin (the same row without
the bias sentence):

* the answer choices are the ``(X) text`` lines after ``Answer choices:``;
* the *bias sentence* is found by diffing the BCT user turn against the control user turn line by
  line (the lines only the BCT row has: the bias sentence and a re-worded instruction);
* the *suggested* option is the option that sentence mentions — by quoted option text
  (``'taking the next train'``, ``'allowing gases to enter the cell.'.``), by letter (``I was once
  told that A.``, ``THE ANSWER IS C.``, ``It would upset me if A was true.``) or, failing both, by
  the unquoted text of a long-enough option — whatever the polarity of the sentence;
* the *correct* option is the BCT target letter (``D) pandemic`` or
  ``The best answer is: (C) ...``), which must equal the control's target letter.

A row whose mentioned option cannot be identified (none, or several different ones) is counted and
logged with its line, never guessed. ``chosen`` is the correct option and ``rejected`` the suggested
option when it is wrong, else a seeded random other option, both in the row's own answer format
(``C) text`` when the user turn ends with ``The best answer is: (``, else
``The best answer is: (C) text``). ``n_correct`` rows with a correct suggestion and ``n_incorrect``
with a wrong one are sampled with ``seed``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefbias.data.schemas import check_chat
from prefbias.io import DataError, atomic_open, iter_jsonl, write_json

log = logging.getLogger(__name__)

PREFILL = "The best answer is: ("
CHOICES_HEADER = "Answer choices:"
_CHOICE = re.compile(r"^\(([A-Z])\)\s?(.*)$")
_TARGET = re.compile(r"^\s*(?:The best answer is:\s*)?\(?([A-Z])\)")
_LETTER = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
_QUOTES = "'\"‘’“”"
# words that can follow a letter used as an option name at the start of a sentence ("A is ...")
_VERBS = {"is", "was", "would", "could", "might", "must", "should", "seems", "sounds", "looks",
          "appears", "can", "will", "may", "isn't", "wasn't"}
_TRAIL = ".!?;:,"


@dataclass
class Choice:
    letter: str
    text: str


@dataclass
class Mention:
    letters: set[str]
    lines: list[str]
    how: str                 # quote | letter | text | none


def parse_choices(text: str, *, path: str | os.PathLike, line: int,
                  field: str = "messages[0].content") -> list[Choice]:
    lines = text.split("\n")
    try:
        start = next(i for i, s in enumerate(lines) if s.strip() == CHOICES_HEADER)
    except StopIteration:
        raise DataError(path, f"no '{CHOICES_HEADER}' section", line=line, field=field) from None
    choices = []
    for s in lines[start + 1:]:
        m = _CHOICE.match(s.strip())
        if not m:
            break
        choices.append(Choice(m.group(1), m.group(2).strip()))
    if len(choices) < 2:
        raise DataError(path, f"fewer than 2 answer choices after '{CHOICES_HEADER}'", line=line,
                        field=field)
    want = [chr(ord("A") + i) for i in range(len(choices))]
    if [c.letter for c in choices] != want:
        raise DataError(path, f"answer choices are not lettered {''.join(want)}", line=line,
                        field=field)
    return choices


def target_letter(text: str) -> str | None:
    m = _TARGET.match(text)
    return m.group(1) if m else None


def bias_lines(bct_user: str, control_user: str) -> list[str]:
    """Non-blank lines of the BCT user turn that the control user turn does not have."""
    remaining = Counter(s.strip() for s in control_user.split("\n"))
    extra = []
    for s in bct_user.split("\n"):
        key = s.strip()
        if remaining[key] > 0:
            remaining[key] -= 1
        elif key:
            extra.append(key)
    return extra


def _quoted(line: str, choices: list[Choice]) -> set[str]:
    found: dict[str, str] = {}
    for flags in (0, re.IGNORECASE):
        for c in choices:
            core = c.text.rstrip(_TRAIL).strip()
            if not core:
                continue
            pat = f"[{_QUOTES}]{re.escape(core)}[{re.escape(_TRAIL)}]*[{_QUOTES}]"
            if re.search(pat, line, flags):
                found[c.letter] = core
        if found:
            break
    return _drop_substrings(found)


def _drop_substrings(found: dict[str, str]) -> set[str]:
    """Keep options whose matched text is not contained in another matched option's text."""
    return {k for k, v in found.items()
            if not any(k2 != k and v.lower() in v2.lower() and v.lower() != v2.lower()
                       for k2, v2 in found.items())}


def _letters(line: str, choices: list[Choice]) -> set[str]:
    valid = {c.letter for c in choices}
    out = set()
    for m in _LETTER.finditer(line):
        letter = m.group(1)
        if letter not in valid:
            continue
        after = line[m.end():]
        nxt = re.match(r"\s+([a-z][\w'’]*)", after)
        before = line[:m.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?"
        if letter in ("A", "I") and nxt and sentence_start and nxt.group(1) not in _VERBS:
            continue                                   # the article "A ..." / the pronoun "I ..."
        if letter == "I" and nxt and nxt.group(1) not in _VERBS:
            continue
        out.add(letter)
    return out


def _unquoted_text(line: str, choices: list[Choice]) -> set[str]:
    found = {}
    for c in choices:
        core = c.text.rstrip(_TRAIL).strip()
        if len(core) < 8 and len(core.split()) < 2:
            continue                                   # too short to match without quotes
        if re.search(rf"(?<!\w){re.escape(core)}(?!\w)", line, re.IGNORECASE):
            found[c.letter] = core
    return _drop_substrings(found)


def find_mention(lines: list[str], choices: list[Choice]) -> Mention:
    """The option(s) the bias lines mention: quoted text first, then letters, then plain text."""
    for how, finder in (("quote", _quoted), ("letter", _letters), ("text", _unquoted_text)):
        letters: set[str] = set()
        hit_lines = []
        for s in lines:
            got = finder(s, choices)
            if got:
                letters |= got
                hit_lines.append(s)
        if letters:
            return Mention(letters, hit_lines, how)
    return Mention(set(), [], "none")


def answer_text(choice: Choice, *, prefill: bool) -> str:
    if prefill:
        return f"{choice.letter}) {choice.text}"
    return f"{PREFILL}{choice.letter}) {choice.text}"


def analyse(bct_path: str | os.PathLike, control_path: str | os.PathLike, *, seed: int
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every identifiable BCT row as an SAA candidate, plus counts of the others."""
    control = list(iter_jsonl(control_path))
    rows: list[dict[str, Any]] = []
    skipped: dict[str, list[int]] = {"no_bias_line": [], "no_mention": [], "ambiguous": [],
                                     "unparseable_target": []}
    n = 0
    for idx, (line, row) in enumerate(iter_jsonl(bct_path)):
        n += 1
        if idx >= len(control):
            raise DataError(control_path, f"has only {len(control)} rows; BCT row at line {line} "
                            "has no control twin")
        cline, crow = control[idx]
        turns = check_chat(row, "messages", path=bct_path, line=line, end="assistant")
        cturns = check_chat(crow, "messages", path=control_path, line=cline, end="assistant")
        if len(turns) != 2 or len(cturns) != 2:
            bad = (bct_path, line) if len(turns) != 2 else (control_path, cline)
            raise DataError(bad[0], "expected exactly one user and one assistant turn",
                            line=bad[1], field="messages")
        user, target = turns[0]["content"], turns[1]["content"]
        choices = parse_choices(user, path=bct_path, line=line)
        cchoices = parse_choices(cturns[0]["content"], path=control_path, line=cline)
        if [(c.letter, c.text) for c in choices] != [(c.letter, c.text) for c in cchoices]:
            raise DataError(control_path, f"answer choices differ from BCT line {line}: the rows "
                            "are not twins", line=cline, field="messages[0].content")
        correct = target_letter(target)
        ccorrect = target_letter(cturns[1]["content"])
        if correct is None or correct not in {c.letter for c in choices}:
            log.warning("BCT line %d: cannot read the target letter from %r", line, target[:80])
            skipped["unparseable_target"].append(line)
            continue
        if ccorrect is not None and ccorrect != correct:
            raise DataError(control_path, f"control target {ccorrect} differs from BCT target "
                            f"{correct} (BCT line {line})", line=cline, field="messages[1].content")
        extra = bias_lines(user, cturns[0]["content"])
        if not extra:
            log.warning("BCT line %d: no line differs from the control row", line)
            skipped["no_bias_line"].append(line)
            continue
        mention = find_mention(extra, choices)
        if len(mention.letters) != 1:
            reason = "no_mention" if not mention.letters else "ambiguous"
            log.warning("BCT line %d: %s (options %s) in %r", line, reason,
                        sorted(mention.letters), extra)
            skipped[reason].append(line)
            continue
        suggested = next(iter(mention.letters))
        by_letter = {c.letter: c for c in choices}
        prefill = user.rstrip().endswith(PREFILL)
        if suggested != correct:
            rejected_letter, rejected_kind = suggested, "suggested"
        else:
            others = [c.letter for c in choices if c.letter != correct]
            rejected_letter = random.Random(f"{seed}:{line}").choice(others)
            rejected_kind = "random"
        rows.append({
            "id": f"saa-{line}",
            "prompt": [{"role": "user", "content": user}],
            "chosen": answer_text(by_letter[correct], prefill=prefill),
            "rejected": answer_text(by_letter[rejected_letter], prefill=prefill),
            "source": "saa",
            "instruction": user,
            "suggested_letter": suggested,
            "correct_letter": correct,
            "suggestion_correct": suggested == correct,
            "rejected_letter": rejected_letter,
            "rejected_kind": rejected_kind,
            "bias_sentence": mention.lines[0],
            "mention": mention.how,
            "answer_format": "prefill" if prefill else "full",
            "bct_line": line,
        })
    if n != len(control):
        raise DataError(control_path, f"has {len(control)} rows but the BCT file has {n}")
    stats = {"bct_rows": n, "identified": len(rows),
             "skipped": {k: len(v) for k, v in skipped.items()},
             "skipped_lines": skipped,
             "available_correct": sum(r["suggestion_correct"] for r in rows),
             "available_incorrect": sum(not r["suggestion_correct"] for r in rows),
             "mention_kinds": dict(Counter(r["mention"] for r in rows))}
    return rows, stats


def build_saa(bct: str | os.PathLike, control: str | os.PathLike, out: str | os.PathLike, *,
              n_correct: int, n_incorrect: int, seed: int,
              stats_out: str | os.PathLike | None = None) -> dict[str, Any]:
    rows, stats = analyse(bct, control, seed=seed)
    pools = {True: [r for r in rows if r["suggestion_correct"]],
             False: [r for r in rows if not r["suggestion_correct"]]}
    for want, key, label in ((n_correct, True, "correct"), (n_incorrect, False, "incorrect")):
        if len(pools[key]) < want:
            raise DataError(bct, f"only {len(pools[key])} identifiable rows with a {label} "
                            f"suggestion, {want} requested (saa.n_{label})")
    rng = random.Random(seed)
    picked = rng.sample(pools[True], n_correct) + rng.sample(pools[False], n_incorrect)
    picked.sort(key=lambda r: r["bct_line"])
    stats.update({"n_correct": n_correct, "n_incorrect": n_incorrect, "seed": seed,
                  "written": len(picked), "bct": str(bct), "control": str(control),
                  "lines": [r["bct_line"] for r in picked]})
    stats_out = Path(stats_out) if stats_out else Path(out).parent / "saa.stats.json"
    with atomic_open(out) as fh:
        for r in picked:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        write_json(stats_out, stats)
    log.info("SAA: %d BCT rows, %d identified (%d correct / %d incorrect suggestions), skipped "
             "%s; wrote %d rows to %s", stats["bct_rows"], stats["identified"],
             stats["available_correct"], stats["available_incorrect"], stats["skipped"],
             len(picked), out)
    return stats
