"""Style variants of UltraFeedback (stylized-dpo §3.2.2): rewrite every *chosen* answer.

A rewriter model (gemma-3-12b-it in the paper) gets ``styles.template`` filled with the style's
description, the user request and the original chosen answer, and returns the same content in the
new tone. The rejected answer is kept. Work is scattered into ``styles.shards`` shards (pair ``k``
of the concatenated splits goes to shard ``k mod n``), each generated resumably
(:func:`prefbias.generation.base.run_resumable`), and gathered into preference sets
``ultrafeedback-<style>/<split>.jsonl``.

Flags (counted in the stats; dropped when ``styles.drop_flagged``):

* ``empty`` — nothing left after stripping whitespace (and a stripped preamble);
* ``truncated`` — the rewrite hit ``max_new_tokens`` (``finish_reason == "length"``);
* ``refusal`` — the rewrite opens like a refusal (``I'm sorry``, ``I cannot``, ``As an AI`` ...)
  while the original chosen answer does not (a refusal rewritten as a refusal is fine).

A leading preamble line such as ``Here is the rewritten answer:`` is removed (flag
``preamble_stripped``, not dropped).

Tone-agnostic filter (``styles.filter_tone_agnostic``, default off as in the paper, whose stated
limitation is exactly this): drops pairs whose last user turn asks for a translation
(``translat(e|ion|ing)``, or ``in/into <language>`` after ``say``/``write``/``how do you say``),
because a tone change alters what a correct translation is. It is a heuristic: a prompt that
mentions translation in passing is dropped too.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefbias.generation.base import GenerationError, GenRequest, Sampling, run_resumable
from prefbias.io import DataError, atomic_open, check_field, iter_jsonl, write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
FLAGS = ("empty", "truncated", "refusal")

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i apologi[sz]e|i can(no|')t|i cannot|"
    r"i'?m (not able|unable)|i am (not able|unable)|i won'?t|i will not|as an ai\b|"
    r"as a language model|i must decline|i'?m afraid i can)", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^\s*(sure[,!.]?\s*)?(here(?:'s| is) (the |a |your )?(rewritten|revised|new|updated)"
    r"[^\n:]*:|rewritten (answer|response)[^\n:]*:)[ \t]*\n*", re.IGNORECASE)
_LANGS = (r"english|spanish|french|german|italian|portuguese|chinese|mandarin|japanese|korean|"
          r"russian|arabic|hindi|bengali|urdu|turkish|dutch|swedish|polish|greek|hebrew|persian|"
          r"farsi|vietnamese|thai|indonesian|malay|tamil|telugu|marathi|gujarati|punjabi|"
          r"malayalam|kannada|oriya|odia|swahili|czech|romanian|hungarian|finnish|danish|"
          r"norwegian|ukrainian|catalan|latin")
_TRANSLATION = re.compile(
    rf"\btranslat(e|ed|es|ion|ions|ing)\b|\b(say|write|express|how do you say)\b[^.?!\n]{{0,80}}"
    rf"\b(in|into)\s+({_LANGS})\b", re.IGNORECASE)
_FIELDS = re.compile(r"\{(style_description|prompt|response)\}")


def render_context(prompt: list[Mapping[str, str]]) -> str:
    """The user request as text: a single user turn verbatim, else a role-labelled transcript."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def fill_template(template: str, *, style_description: str, prompt: str, response: str) -> str:
    """Single-pass substitution of ``{style_description}``, ``{prompt}``, ``{response}`` (other
    braces — code in prompts/answers — are left alone, and inserted text is never re-expanded)."""
    values = {"style_description": style_description, "prompt": prompt, "response": response}
    missing = [k for k in values if "{" + k + "}" not in template]
    if missing:
        raise GenerationError(f"styles.template lacks the placeholder(s) {missing}")
    return _FIELDS.sub(lambda m: values[m.group(1)], template)


def rewrite_request(pair: Mapping[str, Any], rid: str, style: str, spec: Mapping[str, Any]
                    ) -> GenRequest:
    desc = spec["descriptions"].get(style)
    if desc is None:
        raise GenerationError(f"styles.descriptions has no entry for style {style!r}")
    text = fill_template(spec["template"], style_description=desc.strip(),
                         prompt=render_context(pair["prompt"]), response=pair["chosen"])
    return GenRequest(rid, [{"role": "user", "content": text}])


def clean_rewrite(text: str) -> tuple[str, bool]:
    m = _PREAMBLE.match(text)
    if m:
        return text[m.end():].strip(), True
    return text.strip(), False


def flag_rewrite(text: str, finish_reason: str, original: str) -> list[str]:
    flags = []
    if not text.strip():
        flags.append("empty")
    if finish_reason == "length":
        flags.append("truncated")
    if text.strip() and _REFUSAL.match(text) and not _REFUSAL.match(original.strip()):
        flags.append("refusal")
    return flags


def is_tone_agnostic(prompt: list[Mapping[str, str]]) -> bool:
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return bool(users) and bool(_TRANSLATION.search(users[-1]))


def shard_pairs(prefs: Mapping[str, str | os.PathLike], shard: int, n_shards: int
                ) -> list[tuple[str, int, dict[str, Any]]]:
    """``(split, index_in_split, pair)`` of shard ``shard`` (0-based) of ``n_shards``."""
    if not 0 <= shard < n_shards:
        raise GenerationError(f"shard index {shard} out of range for {n_shards} shards")
    out = []
    k = 0
    for split in sorted(prefs, key=lambda s: (SPLITS.index(s) if s in SPLITS else 99, s)):
        path = prefs[split]
        for idx, (line, row) in enumerate(iter_jsonl(path)):
            check_field(row, "id", str, path=path, line=line)
            check_field(row, "prompt", list, path=path, line=line, nonempty=True)
            check_field(row, "chosen", str, path=path, line=line)
            check_field(row, "rejected", str, path=path, line=line)
            if k % n_shards == shard:
                out.append((split, idx, row))
            k += 1
    return out


def run_shard(backend, prefs: Mapping[str, str | os.PathLike], style: str, shard: int,
              n_shards: int, spec: Mapping[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """Rewrite the chosen answers of one shard into ``out`` (resumable, atomic)."""
    sampling = Sampling.from_dict(spec["sampling"])
    requests, extra = [], {}
    for split, idx, pair in shard_pairs(prefs, shard, n_shards):
        rid = f"{split}:{idx}:{pair['id']}"
        requests.append(rewrite_request(pair, rid, style, spec))
        extra[rid] = {"split": split, "index": idx, "pair_id": pair["id"], "style": style,
                      "prompt": pair["prompt"], "original_chosen": pair["chosen"],
                      "rejected": pair["rejected"], "pair_source": pair.get("source")}
    if not requests:
        log.warning("style %s shard %d/%d is empty", style, shard, n_shards)
    return run_resumable(backend, requests, sampling, out, extra=extra)


def gather(shards: Iterable[str | os.PathLike], style: str, spec: Mapping[str, Any],
           out_dir: str | os.PathLike, splits: Iterable[str] = SPLITS) -> dict[str, Any]:
    """Shard rows -> ``out_dir/<split>.jsonl`` preference pairs + ``out_dir/stats.json``."""
    splits = list(splits)
    by_split: dict[str, list[tuple[int, dict]]] = {s: [] for s in splits}
    drop_flagged = bool(spec["drop_flagged"])
    filter_ta = bool(spec["filter_tone_agnostic"])
    stats: dict[str, Any] = {"style": style, "drop_flagged": drop_flagged,
                             "filter_tone_agnostic": filter_ta, "splits": {}}
    counts = {s: {"n_in": 0, "n_out": 0, **{f: 0 for f in FLAGS}, "preamble_stripped": 0,
                  "tone_agnostic": 0, "dropped_flagged": 0, "dropped_tone_agnostic": 0}
              for s in splits}
    seen: set[str] = set()
    for shard in shards:
        for line, row in iter_jsonl(shard):
            rid = check_field(row, "id", str, path=shard, line=line)
            split = check_field(row, "split", str, path=shard, line=line)
            if row.get("style") != style:
                raise DataError(shard, f"row of style {row.get('style')!r}, expected {style!r}",
                                line=line, field="style")
            if split not in counts:
                raise DataError(shard, f"unexpected split {split!r}", line=line, field="split")
            if rid in seen:
                raise DataError(shard, f"duplicate row {rid!r} across shards", line=line)
            seen.add(rid)
            c = counts[split]
            c["n_in"] += 1
            text, stripped = clean_rewrite(row["response"])
            flags = flag_rewrite(text, row["finish_reason"], row["original_chosen"])
            c["preamble_stripped"] += stripped
            for f in flags:
                c[f] += 1
            tone_agnostic = is_tone_agnostic(row["prompt"])
            c["tone_agnostic"] += tone_agnostic
            if drop_flagged and flags:
                c["dropped_flagged"] += 1
                continue
            if filter_ta and tone_agnostic:
                c["dropped_tone_agnostic"] += 1
                continue
            by_split[split].append((row["index"], {
                "id": row["pair_id"], "prompt": row["prompt"], "chosen": text,
                "rejected": row["rejected"], "source": f"ultrafeedback-{style}", "style": style,
                "original_chosen": row["original_chosen"], "rewriter": row["model"],
                "rewriter_revision": row["revision"], "rewriter_backend": row["backend"],
                "sampling": row["sampling"], "finish_reason": row["finish_reason"],
                "flags": flags + (["preamble_stripped"] if stripped else []),
                "tone_agnostic": tone_agnostic}))
    out = Path(out_dir)
    for split in splits:
        rows = [r for _, r in sorted(by_split[split], key=lambda x: x[0])]
        if not rows and counts[split]["n_in"]:
            raise GenerationError(f"style {style} split {split}: every rewrite was dropped")
        with atomic_open(out / f"{split}.jsonl") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        counts[split]["n_out"] = len(rows)
        stats["splits"][split] = counts[split]
    write_json(out / "stats.json", stats)
    log.info("style %s: %s", style, {s: (c["n_in"], c["n_out"]) for s, c in counts.items()})
    return stats
