"""Preference sets in the pipeline's preference-pair schema (``docs/ARCHITECTURE.md``).

``{"id", "prompt": [{"role", "content"}, ...], "chosen": str, "rejected": str, "source", ...}``:
``prompt`` is the chat context ending with a user turn, ``chosen``/``rejected`` the two assistant
replies.

* ``ultrafeedback`` — HuggingFaceH4/ultrafeedback_binarized rows: ``chosen``/``rejected`` are full
  chats; the prompt is ``chosen[:-1]`` (which must equal ``rejected[:-1]``) and both must end with
  an assistant turn.
* ``sharegpt`` — LLaMA-Factory ranking rows (dpo_mix_en): ``conversations`` of
  system/human/gpt turns (an odd number of human/gpt turns, ending with human; multi-turn context is
  kept), ``chosen``/``rejected`` are ``{"from": "gpt", "value"}``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefbias.data.schemas import check_chat, check_message, check_order
from prefbias.io import DataError, atomic_open, check_field, iter_jsonl

log = logging.getLogger(__name__)

SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}
KINDS = ("ultrafeedback", "sharegpt")


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


def sharegpt_pairs(path: str | os.PathLike, *, source: str = "dpo_mix_en"
                   ) -> Iterator[dict[str, Any]]:
    for line, row in iter_jsonl(path):
        convs = check_field(row, "conversations", list, path=path, line=line, nonempty=True)
        prompt = []
        for i, turn in enumerate(convs):
            role, content = check_message(turn, f"conversations[{i}]", path=path, line=line,
                                          role_key="from", content_key="value",
                                          roles=tuple(SHAREGPT_ROLES))
            prompt.append({"role": SHAREGPT_ROLES[role], "content": content})
        check_order(prompt, "conversations", path=path, line=line, end="user")
        out = {"id": f"{source}-{line}", "prompt": prompt,
               "chosen": _sharegpt_reply(row, "chosen", path=path, line=line),
               "rejected": _sharegpt_reply(row, "rejected", path=path, line=line),
               "source": source, "line": line}
        yield out


def build_prefs(kind: str, input_path: str | os.PathLike, out: str | os.PathLike, *,
                source: str | None = None) -> int:
    if kind == "ultrafeedback":
        rows = ultrafeedback_pairs(input_path)
    elif kind == "sharegpt":
        rows = sharegpt_pairs(input_path, source=source or "dpo_mix_en")
    else:
        raise ValueError(f"unknown preference kind {kind!r} (expected one of {KINDS})")
    n = identical = multi = 0
    with atomic_open(out) as fh:
        for row in rows:
            identical += row["chosen"] == row["rejected"]
            multi += sum(t["role"] == "user" for t in row["prompt"]) > 1
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        if n == 0:
            raise DataError(input_path, "no preference pair in the file")
    log.info("%s %s -> %s: %d pairs (%d multi-turn, %d with identical chosen/rejected)", kind,
             input_path, Path(out), n, multi, identical)
    return n
