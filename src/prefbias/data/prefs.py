"""Preference sets in the pipeline's preference-pair schema (``docs/ARCHITECTURE.md``).

``{"id", "prompt": [{"role", "content"}, ...], "chosen": str, "rejected": str, "source", ...}``:
``prompt`` is the chat context ending with a user turn, ``chosen``/``rejected`` the two assistant
replies.

* ``ultrafeedback`` — HuggingFaceH4/ultrafeedback_binarized rows: ``chosen``/``rejected`` are full
  chats; the prompt is ``chosen[:-1]`` (which must equal ``rejected[:-1]``) and both must end with
  an assistant turn.
* ``sharegpt`` — LLaMA-Factory ranking rows in the sharegpt schema (dpo_mix_en at later
  revisions): ``conversations`` of system/human/gpt turns (an odd number of human/gpt turns, ending
  with human; multi-turn context is kept), ``chosen``/``rejected`` are ``{"from": "gpt", "value"}``.
* ``alpaca`` — LLaMA-Factory ranking rows in the alpaca schema (dpo_mix_en at the pinned
  revision e8c5070d of llamafactory/DPO-En-Zh-20k; LLaMA-Factory's dataset_info of 2024-04 maps its
  columns prompt/response=answer/system/history): ``prompt`` the last user turn, ``answer`` the
  list ``[chosen, rejected]``, ``system`` (may be empty) and ``history`` a list of
  ``[user, assistant]`` pairs before the prompt (may be empty or absent), converted as
  LLaMA-Factory's ``convert_alpaca`` does.
* ``llamafactory`` — either of the two, detected from the columns of each row (``conversations``
  -> sharegpt; ``prompt`` + ``answer`` -> alpaca); a file mixing the two is an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefbias.data.schemas import check_chat, check_message, check_order
from prefbias.io import DataError, UniqueIds, atomic_open, check_field, iter_jsonl

log = logging.getLogger(__name__)

SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}
KINDS = ("ultrafeedback", "sharegpt", "alpaca", "llamafactory")


def ultrafeedback_pairs(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    for line, row in iter_jsonl(path):
        chosen = check_chat(row, "chosen", path=path, line=line, end="assistant")
        rejected = check_chat(row, "rejected", path=path, line=line, end="assistant")
        if chosen[:-1] != rejected[:-1]:
            raise DataError(path, "chosen and rejected have different contexts", line=line,
                            field="rejected")
        prompt_id = check_field(row, "prompt_id", str, path=path, line=line, optional=True)
        out = {"id": prompt_id or f"ultrafeedback-{line}", "prompt": chosen[:-1],
               "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"],
               "source": "ultrafeedback", "line": line}
        for key in ("score_chosen", "score_rejected"):
            value = check_field(row, key, float, path=path, line=line, optional=True)
            if value is not None:
                out[key] = value
        yield out


def _sharegpt_reply(row: dict, field: str, *, path, line) -> str:
    reply = check_field(row, field, dict, path=path, line=line)
    role, content = check_message(reply, field, path=path, line=line, role_key="from",
                                  content_key="value", roles=("gpt",))
    return content


def _sharegpt_pair(row: dict, *, path, line: int, source: str) -> dict[str, Any]:
    convs = check_field(row, "conversations", list, path=path, line=line, nonempty=True)
    prompt = []
    for i, turn in enumerate(convs):
        role, content = check_message(turn, f"conversations[{i}]", path=path, line=line,
                                      role_key="from", content_key="value",
                                      roles=tuple(SHAREGPT_ROLES))
        prompt.append({"role": SHAREGPT_ROLES[role], "content": content})
    check_order(prompt, "conversations", path=path, line=line, end="user")
    return {"id": f"{source}-{line}", "prompt": prompt,
            "chosen": _sharegpt_reply(row, "chosen", path=path, line=line),
            "rejected": _sharegpt_reply(row, "rejected", path=path, line=line),
            "source": source, "line": line}


def _text(value: Any, field: str, *, path, line: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise DataError(path, "expected a non-empty string" if not allow_empty
                        else "expected a string", line=line, field=field)
    return value


def _alpaca_pair(row: dict, *, path, line: int, source: str) -> dict[str, Any]:
    answer = check_field(row, "answer", list, path=path, line=line)
    if len(answer) != 2:
        raise DataError(path, f"a ranking answer is [chosen, rejected]; got {len(answer)} "
                        "items", line=line, field="answer")
    chosen = _text(answer[0], "answer[0]", path=path, line=line)
    rejected = _text(answer[1], "answer[1]", path=path, line=line)
    system = row.get("system")
    if system is not None:
        system = _text(system, "system", path=path, line=line, allow_empty=True)
    history = row.get("history") or []
    if not isinstance(history, list):
        raise DataError(path, "history must be a list of [user, assistant] pairs", line=line,
                        field="history")
    prompt: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise DataError(path, "expected a [user, assistant] pair", line=line,
                            field=f"history[{i}]")
        prompt.append({"role": "user",
                       "content": _text(pair[0], f"history[{i}][0]", path=path, line=line)})
        prompt.append({"role": "assistant",
                       "content": _text(pair[1], f"history[{i}][1]", path=path, line=line)})
    prompt.append({"role": "user", "content": _text(row.get("prompt"), "prompt", path=path,
                                                    line=line)})
    return {"id": f"{source}-{line}", "prompt": prompt, "chosen": chosen, "rejected": rejected,
            "source": source, "line": line}


def detect_schema(row: Any, *, path, line: int) -> str:
    """``sharegpt`` or ``alpaca`` from a LLaMA-Factory ranking row's columns."""
    if isinstance(row, dict) and "conversations" in row:
        return "sharegpt"
    if isinstance(row, dict) and "prompt" in row and "answer" in row:
        return "alpaca"
    cols = sorted(row) if isinstance(row, dict) else type(row).__name__
    raise DataError(path, "not a LLaMA-Factory ranking row: expected the sharegpt columns "
                    "{conversations, chosen, rejected} or the alpaca columns {prompt, answer, "
                    f"system, history}}; got {cols}", line=line)


def llamafactory_pairs(path: str | os.PathLike, *, source: str = "dpo_mix_en",
                       schema: str | None = None) -> Iterator[dict[str, Any]]:
    """Pairs from a LLaMA-Factory ranking file; ``schema`` ``None`` detects it per row and
    requires one schema for the whole file."""
    seen: tuple[str, int] | None = None
    for line, row in iter_jsonl(path):
        kind = schema or detect_schema(row, path=path, line=line)
        if schema is None:
            if seen is not None and seen[0] != kind:
                raise DataError(path, f"row in the {kind} schema in a file whose line {seen[1]} "
                                f"is in the {seen[0]} schema", line=line)
            seen = seen or (kind, line)
        if kind == "sharegpt":
            yield _sharegpt_pair(row, path=path, line=line, source=source)
        else:
            yield _alpaca_pair(row, path=path, line=line, source=source)
    if seen is not None:
        log.info("%s: LLaMA-Factory ranking rows in the %s schema", path, seen[0])


def sharegpt_pairs(path: str | os.PathLike, *, source: str = "dpo_mix_en"
                   ) -> Iterator[dict[str, Any]]:
    return llamafactory_pairs(path, source=source, schema="sharegpt")


def alpaca_pairs(path: str | os.PathLike, *, source: str = "dpo_mix_en"
                 ) -> Iterator[dict[str, Any]]:
    return llamafactory_pairs(path, source=source, schema="alpaca")


def build_prefs(kind: str, input_path: str | os.PathLike, out: str | os.PathLike, *,
                source: str | None = None) -> int:
    if kind == "ultrafeedback":
        rows = ultrafeedback_pairs(input_path)
    elif kind in ("sharegpt", "alpaca", "llamafactory"):
        rows = llamafactory_pairs(input_path, source=source or "dpo_mix_en",
                                  schema=None if kind == "llamafactory" else kind)
    else:
        raise ValueError(f"unknown preference kind {kind!r} (expected one of {KINDS})")
    n = identical = multi = 0
    ids = UniqueIds(input_path)  # a repeated id would share another row's reference log-probs
    with atomic_open(out) as fh:
        for row in rows:
            ids.add(row["id"], row["line"])
            identical += row["chosen"] == row["rejected"]
            multi += sum(t["role"] == "user" for t in row["prompt"]) > 1
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        if n == 0:
            raise DataError(input_path, "no preference pair in the file")
    log.info("%s %s -> %s: %d pairs (%d multi-turn, %d with identical chosen/rejected)", kind,
             input_path, Path(out), n, multi, identical)
    return n
