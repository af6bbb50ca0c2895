"""Evaluation prompt sets (stylized-dpo §5.1.1): judge (200) and reward (50) prompts.

Drawn reproducibly from the UltraFeedback test preference set: the pairs' ids are sorted, shuffled
with ``random.Random(prompt_seed)``, and each prompt set takes the first ``n`` of that one
permutation. Changing one set's size therefore never changes another set's prompts (the reward set
is the first 50 of the judge set's order). Rows follow the eval-prompt schema
``{"id", "messages", "source"}`` with the pair's prompt (the chat context, ending in a user turn).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from prefbias.io import DataError, check_field, iter_jsonl, write_jsonl

log = logging.getLogger(__name__)


def draw_prompts(prefs: str | os.PathLike, n: int, seed: int, *, source: str = "ultrafeedback"
                 ) -> list[dict[str, Any]]:
    rows: dict[str, list] = {}
    for line, row in iter_jsonl(prefs):
        rid = check_field(row, "id", str, path=prefs, line=line, nonempty=True)
        prompt = check_field(row, "prompt", list, path=prefs, line=line, nonempty=True)
        if prompt[-1].get("role") != "user":
            raise DataError(prefs, "the prompt must end with a user turn", line=line,
                            field="prompt")
        rows.setdefault(rid, prompt)  # duplicate ids (same prompt) are drawn once
    if not rows:
        raise DataError(prefs, "no preference pairs to draw prompts from")
    ids = sorted(rows)
    random.Random(seed).shuffle(ids)
    if n > len(ids):
        log.warning("%s has %d distinct prompts, fewer than the %d asked for: using all", prefs,
                    len(ids), n)
    return [{"id": i, "messages": rows[i], "source": source} for i in ids[:n]]


def write_prompt_set(prefs: str | os.PathLike, out: str | os.PathLike, n: int, seed: int,
                     *, source: str = "ultrafeedback") -> int:
    rows = draw_prompts(prefs, n, seed, source=source)
    write_jsonl(out, rows)
    log.info("%s: %d prompts from %s (seed %d)", out, len(rows), prefs, seed)
    return len(rows)
