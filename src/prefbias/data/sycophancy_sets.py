"""The sycophancy-eval sets (Sharma et al. 2023) in the pipeline's own row format.

``answer.jsonl`` rows::

    {"id", "dataset", "question_id", "question", "template", "messages": [{"role": "user", ...}],
     "correct_answer", "incorrect_answer", "aliases"}

``template`` is the key of ``sycophancy.answer_templates`` (none, dont_think_correct,
think_incorrect, think_correct) whose text equals the row's ``metadata.prompt_template``;
``aliases`` is trivia_qa's ``answer`` list, else ``[long_correct_answer, correct_answer]``.

``are_you_sure.jsonl`` rows::

    {"id", "dataset", "question", "format", "messages" (human -> user, ai -> assistant prefill),
     "correct_letter" | null, "letters" | null, "correct_answer", "aliases"}

``format`` (see :mod:`prefbias.evaluation.sycophancy`): ``letter`` — a multiple-choice row whose
first answer continues the prefill "The answer is ("; ``letter_cot`` — a chain-of-thought
multiple-choice row (dataset ``*_cot``: mmlu_mc_cot, math_mc_cot, or any lettered row without a
prefill): the model reasons first and is asked for the letter after, so such a row never carries
a prefill (one in the file is removed, and counted in the log); ``free`` — a free-form row.
An input file without rows is an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from prefbias.data.schemas import check_message, check_order
from prefbias.io import DataError, atomic_open, check_field, iter_jsonl

log = logging.getLogger(__name__)

TURN_ROLES = {"human": "user", "ai": "assistant"}


def question_id(dataset: str, question: str) -> str:
    return f"{dataset}-{hashlib.sha256(question.encode('utf-8')).hexdigest()[:12]}"


def _messages(row: dict, *, path, line, allow_prefill: bool) -> list[dict[str, str]]:
    turns = check_field(row, "prompt", list, path=path, line=line, nonempty=True)
    msgs = []
    for i, t in enumerate(turns):
        role, content = check_message(t, f"prompt[{i}]", path=path, line=line, role_key="type",
                                      roles=tuple(TURN_ROLES))
        msgs.append({"role": TURN_ROLES[role], "content": content})
    end = "assistant" if allow_prefill and msgs[-1]["role"] == "assistant" else "user"
    check_order(msgs, "prompt", path=path, line=line, end=end)
    return msgs


def _str_list(base: dict, field: str, *, path, line) -> list[str] | None:
    value = _field(base, field, list, path=path, line=line, optional=True)
    if value is None:
        return None
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise DataError(path, f"expected a string, got {type(v).__name__}", line=line,
                            field=f"base.{field}[{i}]")
    return value


def _aliases(base: dict, *, path, line) -> list[str]:
    answer = _str_list(base, "answer", path=path, line=line)
    if answer:
        return answer
    out: list[str] = []
    for key in ("long_correct_answer", "correct_answer"):
        v = _field(base, key, str, path=path, line=line, optional=True)
        if v and v not in out:
            out.append(v)
    if not out:
        raise DataError(path, "no 'answer', 'long_correct_answer' or 'correct_answer'",
                        line=line, field="base.answer")
    return out


def _field(base: dict, name: str, typ, *, path, line, optional=False, nonempty=False):
    """check_field on the nested ``base`` object, naming the field ``base.<name>``."""
    try:
        return check_field(base, name, typ, path=path, line=line, optional=optional,
                           nonempty=nonempty)
    except DataError as e:
        message = str(e).split(f"field '{name}': ", 1)[-1]
        raise DataError(path, message, line=line, field=f"base.{name}") from None


def _base(row: dict, *, path, line) -> dict:
    base = check_field(row, "base", dict, path=path, line=line)
    _field(base, "dataset", str, path=path, line=line, nonempty=True)
    _field(base, "question", str, path=path, line=line, nonempty=True)
    return base


def answer_rows(path: str | os.PathLike, templates: dict[str, str]) -> list[dict[str, Any]]:
    by_text = {v: k for k, v in templates.items()}
    rows = []
    for line, row in iter_jsonl(path):
        msgs = _messages(row, path=path, line=line, allow_prefill=False)
        if len(msgs) != 1:
            raise DataError(path, "expected a single human turn", line=line, field="prompt")
        base = _base(row, path=path, line=line)
        meta = check_field(row, "metadata", dict, path=path, line=line)
        tmpl = meta.get("prompt_template")
        if not isinstance(tmpl, str):
            raise DataError(path, "missing or non-string", line=line,
                            field="metadata.prompt_template")
        if tmpl not in by_text:
            raise DataError(path, f"template {tmpl!r} is not one of sycophancy.answer_templates",
                            line=line, field="metadata.prompt_template")
        correct = _field(base, "correct_answer", str, path=path, line=line)
        incorrect = _field(base, "incorrect_answer", str, path=path, line=line)
        rows.append({"id": f"answer-{line}", "dataset": base["dataset"],
                     "question_id": question_id(base["dataset"], base["question"]),
                     "question": base["question"], "template": by_text[tmpl], "messages": msgs,
                     "correct_answer": correct, "incorrect_answer": incorrect,
                     "aliases": _aliases(base, path=path, line=line)})
    return rows


def are_you_sure_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    rows = []
    for line, row in iter_jsonl(path):
        msgs = _messages(row, path=path, line=line, allow_prefill=True)
        base = _base(row, path=path, line=line)
        has_letter = base.get("correct_letter") is not None
        if not has_letter:
            fmt = "free"
        elif base["dataset"].endswith("_cot") or msgs[-1]["role"] != "assistant":
            fmt = "letter_cot"
            if msgs[-1]["role"] == "assistant":
                log.warning("%s line %d (%s): prefill %r removed: a chain-of-thought row "
                            "reasons before it is asked for the letter", path, line,
                            base["dataset"], msgs[-1]["content"])
                msgs = msgs[:-1]
        else:
            fmt = "letter"
        letter = _field(base, "correct_letter", str, path=path, line=line, optional=True)
        if letter is not None:
            letters = _field(base, "letters", str, path=path, line=line)
            if letter not in letters:
                raise DataError(path, f"correct letter {letter!r} not in {letters!r}", line=line,
                                field="base.correct_letter")
            options = _str_list(base, "answers_list", path=path, line=line)
            idx = letters.index(letter)
            correct = options[idx].strip() if options and idx < len(options) else letter
            aliases = [correct] if correct != letter else []
        else:
            letters = None
            aliases = _aliases(base, path=path, line=line)
            correct = _field(base, "correct_answer", str, path=path, line=line, optional=True) \
                or aliases[0]
        rows.append({"id": f"ays-{line}", "dataset": base["dataset"],
                     "question_id": question_id(base["dataset"], base["question"]),
                     "question": base["question"], "format": fmt, "messages": msgs,
                     "correct_letter": letter,
                     "letters": letters, "correct_answer": correct, "aliases": aliases})
    return rows


def build_sycophancy_sets(answer: str | os.PathLike, are_you_sure: str | os.PathLike,
                          outdir: str | os.PathLike, spec: dict[str, Any]) -> dict[str, int]:
    templates = spec.get("answer_templates")
    if not isinstance(templates, dict) or not templates:
        raise DataError("--spec", "needs the sycophancy section with 'answer_templates'",
                        field="answer_templates")
    a_rows = answer_rows(answer, templates)
    s_rows = are_you_sure_rows(are_you_sure)
    for path, rows in ((answer, a_rows), (are_you_sure, s_rows)):
        if not rows:
            raise DataError(path, "the file has no rows")
    outdir = Path(outdir)
    with atomic_open(outdir / "answer.jsonl") as fa, atomic_open(outdir / "are_you_sure.jsonl") \
            as fs:
        for r in a_rows:
            fa.write(json.dumps(r, ensure_ascii=False) + "\n")
        for r in s_rows:
            fs.write(json.dumps(r, ensure_ascii=False) + "\n")
    log.info("answer: %d rows %s; are_you_sure: %d rows %s, by format %s", len(a_rows),
             dict(Counter((r["dataset"], r["template"]) for r in a_rows)), len(s_rows),
             dict(Counter(r["dataset"] for r in s_rows)),
             dict(Counter(r["format"] for r in s_rows)))
    return {"answer": len(a_rows), "are_you_sure": len(s_rows)}
