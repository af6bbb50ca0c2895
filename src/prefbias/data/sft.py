"""SFT set from smol-smoltalk (stylized-dpo §3.1).

The paper "transformed each example to single-turn conversations of a (optional) system, user,
and assistant message". A single-turn row is kept as it is; a multi-turn row is *transformed* to
its first exchange — the optional system message, the first user message and the assistant reply
to it — and the later turns are discarded (:func:`single_turn`). The first exchange is the only
part of a conversation that is self-contained: every later user turn and reply can refer to
earlier turns, which a single-turn example no longer shows.

An example (kept or transformed) is written when its prompt (system + user rendered with the
model's chat template and the generation prompt) has at most ``max_prompt_tokens`` tokens and its
completion (the assistant text) at most ``max_completion_tokens`` tokens, both under the base
model's tokenizer; otherwise it is dropped, counted by reason. Writes SFT-example rows
(``docs/ARCHITECTURE.md``, ``transformed`` = true for a cut conversation) and
``<out stem>.stats.json`` with the counts: ``total`` = ``kept`` + ``dropped``; ``kept`` =
``single_turn`` + ``transformed`` (both after the length limits).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from prefbias.data.schemas import check_chat
from prefbias.io import DataError, atomic_open, iter_jsonl, write_json

log = logging.getLogger(__name__)

DROP_REASONS = ("prompt_too_long", "completion_too_long")


def stats_path(out: str | os.PathLike) -> Path:
    """``data/sft/train.jsonl`` -> ``data/sft/train.stats.json``."""
    out = Path(out)
    stem = out.name[:-len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(f"{stem}.stats.json")


def load_tokenizer(model_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer in {model_dir} has no chat template")
    return tok


def count_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def prompt_tokens(tok, prompt: list[dict[str, str]]) -> int:
    text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return count_tokens(tok, text)


def single_turn(turns: list[dict[str, str]]) -> tuple[list[dict[str, str]], bool]:
    """``(system?, user, assistant)`` of a validated chat, and whether turns were cut off."""
    start = 1 if turns[0]["role"] == "system" else 0
    first = turns[:start + 2]
    return first, len(turns) > len(first)


def build_sft(input_path: str | os.PathLike, tokenizer, out: str | os.PathLike, *,
              max_prompt_tokens: int, max_completion_tokens: int) -> dict[str, Any]:
    """Filter ``input_path`` (raw smol-smoltalk rows) into ``out``; return the stats dict."""
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
    stem = Path(input_path).name.removesuffix(".jsonl")
    dropped: Counter[str] = Counter({r: 0 for r in DROP_REASONS})
    kept = total = transformed = 0
    with atomic_open(out) as fh:
        for line, row in iter_jsonl(input_path):
            total += 1
            turns, cut = single_turn(check_chat(row, "messages", path=input_path, line=line,
                                                end="assistant"))
            prompt, completion = turns[:-1], turns[-1]["content"]
            n_prompt = prompt_tokens(tok, prompt)
            if n_prompt > max_prompt_tokens:
                dropped["prompt_too_long"] += 1
                continue
            n_completion = count_tokens(tok, completion)
            if n_completion > max_completion_tokens:
                dropped["completion_too_long"] += 1
                continue
            source = row.get("source") if isinstance(row.get("source"), str) else "smol_smoltalk"
            rec = {"id": f"{stem}-{line}", "messages": turns, "source": source,
                   "prompt_tokens": n_prompt, "completion_tokens": n_completion,
                   "transformed": cut}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            kept += 1
            transformed += cut
        if total == 0:
            raise DataError(input_path, "the file has no rows")
        if kept == 0:
            raise DataError(input_path, f"no example kept of {total} (dropped: {dict(dropped)})")
        stats = {"input": str(input_path), "output": str(out), "total": total, "kept": kept,
                 "single_turn": kept - transformed, "transformed": transformed,
                 "dropped": dict(dropped), "max_prompt_tokens": max_prompt_tokens,
                 "max_completion_tokens": max_completion_tokens}
        write_json(stats_path(out), stats)
    log.info("sft %s: %d rows -> kept %d (single-turn %d, multi-turn transformed to their first "
             "exchange %d); dropped %d %s", input_path, total, kept, kept - transformed,
             transformed, sum(dropped.values()), dict(dropped))
    return stats
