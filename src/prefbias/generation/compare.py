"""How far two backends' answers to the same requests agree (hf vs vllm on greedy requests).

:func:`agreement` tokenizes both texts of each request with one tokenizer and reports the exact
matches and, for the rest, where the token sequences first part (the index of the first token
that differs: 0 = from the start).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first token where ``a`` and ``b`` differ (one being a prefix of the other:
    the shorter one's length); None when they are equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def agreement(a: Sequence[str], b: Sequence[str], encode: Callable[[str], Sequence[int]]
              ) -> dict[str, Any]:
    """``{n, exact, exact_fraction, diverged, first_divergence: {min, median, mean, max},
    diverged_at}`` over the pairs ``(a[i], b[i])``; ``encode`` turns a text into token ids."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} texts against {len(b)}")
    at = []
    for x, y in zip(a, b, strict=True):
        if x != y:
            d = first_divergence(list(encode(x)), list(encode(y)))
            at.append(0 if d is None else d)  # same tokens, other text: cannot happen for ids
    n = len(a)
    stats = ({"min": min(at), "median": statistics.median(at),
              "mean": round(statistics.fmean(at), 2), "max": max(at)} if at else None)
    return {"n": n, "exact": n - len(at), "exact_fraction": (n - len(at)) / n if n else None,
            "diverged": len(at), "first_divergence": stats, "diverged_at": sorted(at)}
