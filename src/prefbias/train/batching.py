"""Tokenisation, truncation, deterministic batch order and collation for SFT and preference data.

Prompts are rendered with the tokenizer's chat template (``add_generation_prompt=True``); a
completion is the assistant text followed by the EOS token (``<|im_end|>`` for ChatML), exactly as
TRL's DPOTrainer appends it, so log-probs match TRL's. Sequences longer than ``max_length`` keep
their start (completion truncated); a prompt that alone leaves no room for a completion is dropped
(``long_prompts: drop``, counted in the summary) or raises :class:`DataError` (``error``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefbias.io import DataError, UniqueIds, check_field, iter_jsonl
from prefbias.train.losses import IGNORE

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """One tokenised example. ``completions`` has 1 entry (SFT) or 2 (chosen, rejected)."""
    id: str
    prompt: list[int]
    completions: list[list[int]]

    @property
    def length(self) -> int:
        return len(self.prompt) + max(len(c) for c in self.completions)


@dataclass
class EncodeStats:
    n_rows: int = 0
    n_kept: int = 0
    n_dropped_long_prompt: int = 0
    n_truncated: int = 0
    dropped_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_kept": self.n_kept,
                "n_dropped_long_prompt": self.n_dropped_long_prompt,
                "n_truncated": self.n_truncated}


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _check_messages(msgs: Any, path, line: int, fld: str) -> list[dict[str, str]]:
    if not isinstance(msgs, list) or not msgs:
        raise DataError(path, "expected a non-empty list of messages", line=line, field=fld)
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                or not isinstance(m.get("content"), str):
            raise DataError(path, "each message needs string 'role' and 'content'", line=line,
                            field=fld)
    return msgs


def _fit(prompt: list[int], comps: list[list[int]], max_length: int, *, row_id: str,
         long_prompts: str, path, line: int, stats: EncodeStats) -> Encoded | None:
    if len(prompt) >= max_length:
        if long_prompts == "error":
            raise DataError(path, f"prompt of row '{row_id}' has {len(prompt)} tokens, which "
                            f"leaves no room for a completion within max_length={max_length}",
                            line=line, field="prompt")
        stats.n_dropped_long_prompt += 1
        stats.dropped_ids.append(row_id)
        return None
    room = max_length - len(prompt)
    if any(len(c) > room for c in comps):
        stats.n_truncated += 1
        comps = [c[:room] for c in comps]
    return Encoded(row_id, prompt, comps)


def encode_sft(path: str | Path, tokenizer, *, max_prompt_tokens: int, max_completion_tokens: int,
               max_length: int, long_prompts: str = "drop", limit: int | None = None,
               ) -> tuple[list[Encoded], EncodeStats]:
    """SFT rows ``{"id", "messages": [system?, user, assistant]}`` -> prompt + completion ids."""
    stats = EncodeStats()
    out: list[Encoded] = []
    eos = tokenizer.eos_token
    for line, row in iter_jsonl(path):
        rid = str(check_field(row, "id", (str, int), path=path, line=line))
        msgs = _check_messages(row.get("messages"), path, line, "messages")
        if msgs[-1]["role"] != "assistant":
            raise DataError(path, "last message must be the assistant reply", line=line,
                            field="messages")
        stats.n_rows += 1
        prompt = _ids(tokenizer, render_prompt(tokenizer, msgs[:-1]))
        comp = _ids(tokenizer, msgs[-1]["content"] + eos)
        if len(prompt) > max_prompt_tokens:
            if long_prompts == "error":
                raise DataError(path, f"prompt of row '{rid}' has {len(prompt)} tokens > "
                                f"max_prompt_tokens={max_prompt_tokens}", line=line,
                                field="messages")
            stats.n_dropped_long_prompt += 1
            continue
        if len(comp) > max_completion_tokens:
            comp = comp[:max_completion_tokens]
            stats.n_truncated += 1
        enc = _fit(prompt, [comp], max_length, row_id=rid, long_prompts=long_prompts, path=path,
                   line=line, stats=stats)
        if enc is not None:
            out.append(enc)
        if limit is not None and len(out) >= limit:
            break
    stats.n_kept = len(out)
    return out, stats


def read_pairs(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Validated preference rows ``(line, row)``; ids are unique (reference log-probs and
    eval examples are keyed by id)."""
    rows = []
    ids = UniqueIds(path)
    for line, row in iter_jsonl(path):
        ids.add(check_field(row, "id", (str, int), path=path, line=line), line)
        msgs = _check_messages(row.get("prompt"), path, line, "prompt")
        if msgs[-1]["role"] != "user":
            raise DataError(path, "prompt must end with a user turn", line=line, field="prompt")
        check_field(row, "chosen", str, path=path, line=line)
        check_field(row, "rejected", str, path=path, line=line)
        rows.append((line, row))
    return rows


def encode_pairs(path: str | Path, tokenizer, *, max_length: int, long_prompts: str = "drop",
                 rows: list[tuple[int, dict[str, Any]]] | None = None, id_prefix: str = "",
                 ) -> tuple[list[Encoded], EncodeStats]:
    """Preference rows -> prompt, chosen+EOS, rejected+EOS ids (TRL-identical tokenisation)."""
    stats = EncodeStats()
    out: list[Encoded] = []
    eos = tokenizer.eos_token
    for line, row in (rows if rows is not None else read_pairs(path)):
        stats.n_rows += 1
        rid = id_prefix + str(row["id"])
        prompt = _ids(tokenizer, render_prompt(tokenizer, row["prompt"]))
        comps = [_ids(tokenizer, row[k] if row[k].endswith(eos) else row[k] + eos)
                 for k in ("chosen", "rejected")]
        enc = _fit(prompt, comps, max_length, row_id=rid, long_prompts=long_prompts, path=path,
                   line=line, stats=stats)
        if enc is not None:
            out.append(enc)
    stats.n_kept = len(out)
    return out, stats


def split_holdout(items: list, fraction: float, seed: int, max_eval: int | None = None,
                  min_eval: int = 1) -> tuple[list, list]:
    """Seeded (train, eval) split for sets that ship without a test split: ``fraction`` of the
    rows, at least ``min_eval`` and at most ``max_eval``; at least one row stays for training."""
    if len(items) < 2:
        raise DataError("<holdout>", f"need at least 2 rows to hold out a validation slice, got "
                        f"{len(items)}")
    if min_eval >= len(items):
        raise DataError("<holdout>", f"cannot hold out {min_eval} validation rows (eval_min_"
                        f"examples) of {len(items)} and keep one for training")
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, min_eval, int(round(fraction * len(items))))
    if max_eval is not None:
        n_eval = min(n_eval, max(max_eval, min_eval))
    n_eval = min(n_eval, len(items) - 1)
    held = set(idx[:n_eval])
    return ([x for i, x in enumerate(items) if i not in held],
            [x for i, x in enumerate(items) if i in held])


def subsample(items: list, n: int | None, seed: int) -> list:
    if n is None or len(items) <= n:
        return items
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


def epoch_batches(lengths: list[int], batch_size: int, seed: int, *, group_by_length: bool,
                  drop_last: bool = False, mega: int = 64) -> list[list[int]]:
    """Deterministic batch order for one epoch (a function of ``seed`` only).

    With ``group_by_length`` the shuffled indices are cut into mega-batches of ``mega`` batches,
    each sorted by length and cut into batches, and the batches shuffled again: similar lengths
    share a batch (little padding) while the order stays random.
    """
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if group_by_length:
        span = batch_size * mega
        idx = [i for s in range(0, len(idx), span)
               for i in sorted(idx[s:s + span], key=lambda j: -lengths[j])]
    batches = [idx[s:s + batch_size] for s in range(0, len(idx), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if group_by_length:
        rng.shuffle(batches)
    return batches


def collate(examples: list[Encoded], pad_id: int, *, pairs: bool) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask``/``labels`` (−100 on prompt and padding).

    For pairs the batch is ``[chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}]`` (one forward).
    """
    seqs: list[tuple[list[int], int]] = []
    which = (0, 1) if pairs else (0,)
    for k in which:
        for ex in examples:
            seqs.append((ex.prompt + ex.completions[k], len(ex.prompt)))
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    lab = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for r, (s, p) in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        att[r, :len(s)] = 1
        lab[r, p:len(s)] = torch.tensor(s[p:])
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


def padding_stats(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(real tokens, padded slots) of a collated batch."""
    real = int(batch["attention_mask"].sum())
    return real, batch["attention_mask"].numel()
