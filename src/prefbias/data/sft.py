"""SFT set from smol-smoltalk (stylized-dpo §3.1).

Keeps single-turn examples — optional system, one user, one assistant — whose prompt (system + user
rendered with the model's chat template and the generation prompt) has at most
``max_prompt_tokens`` tokens and whose completion (the assistant text) at most
``max_completion_tokens`` tokens, both under the base model's tokenizer. Writes SFT-example rows
(``docs/ARCHITECTURE.md``) and ``<out stem>.stats.json`` with kept/dropped counts by reason.
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

DROP_REASONS = ("multi_turn", "prompt_too_long", "completion_too_long")


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


def build_sft(input_path: str | os.PathLike, tokenizer, out: str | os.PathLike, *,
              max_prompt_tokens: int, max_completion_tokens: int) -> dict[str, Any]:
    """Filter ``input_path`` (raw smol-smoltalk rows) into ``out``; return the stats dict."""
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
    stem = Path(input_path).name.removesuffix(".jsonl")
    dropped: Counter[str] = Counter({r: 0 for r in DROP_REASONS})
    kept = total = 0
    with atomic_open(out) as fh:
        for line, row in iter_jsonl(input_path):
            total += 1
            turns = check_chat(row, "messages", path=input_path, line=line, end="assistant")
            body = turns[1:] if turns[0]["role"] == "system" else turns
            if len(body) != 2:
                dropped["multi_turn"] += 1
                continue
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
                   "prompt_tokens": n_prompt, "completion_tokens": n_completion}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            kept += 1
        if kept == 0:
            raise DataError(input_path, f"no example kept of {total} (dropped: {dict(dropped)})")
        stats = {"input": str(input_path), "output": str(out), "total": total, "kept": kept,
                 "dropped": dict(dropped), "max_prompt_tokens": max_prompt_tokens,
                 "max_completion_tokens": max_completion_tokens}
        write_json(stats_path(out), stats)
    log.info("sft %s: kept %d of %d; dropped %s", input_path, kept, total, dict(dropped))
    return stats
