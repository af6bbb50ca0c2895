"""Reference-model log-probs, computed once per (reference model, preference set, split).

``W/refs/<refmodel>/<prefset>/<split>.pt`` holds ``{"ids", "chosen", "rejected"}`` (summed
completion log-probs, float64, row order of the data file) plus the SHA-256 of the data file, a
fingerprint of the reference model's files and the tokenisation settings. DPO reads this table and
never loads the reference model; a table whose data, model or settings differ is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from prefbias.io import DataError, atomic_path, sha256_file
from prefbias.train.batching import encode_pairs
from prefbias.train.checkpoint import model_fingerprint
from prefbias.train.losses import sequence_logps
from prefbias.train.tasks import completion_forward

log = logging.getLogger(__name__)
FORMAT = 1


class StaleReferenceError(RuntimeError):
    pass


def compute(model_dir: str | Path, prefs_path: str | Path, out_path: str | Path, *,
            max_length: int, batch_size: int = 8, long_prompts: str = "drop") -> dict[str, Any]:
    from prefbias.models.load import load_causal_lm, load_tokenizer

    tok = load_tokenizer(model_dir)
    examples, stats = encode_pairs(prefs_path, tok, max_length=max_length,
                                   long_prompts=long_prompts)
    if not examples:
        raise DataError(prefs_path, "no preference pairs to score (empty or all prompts too long)")
    model = load_causal_lm(model_dir, dtype=torch.float32 if not torch.cuda.is_available()
                           else None).eval()
    from prefbias.train.batching import collate

    device = next(model.parameters()).device
    chosen = torch.zeros(len(examples), dtype=torch.float64)
    rejected = torch.zeros(len(examples), dtype=torch.float64)
    order = sorted(range(len(examples)), key=lambda i: examples[i].length)
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            b = {k: v.to(device) for k, v in collate([examples[i] for i in idx],
                                                     tok.pad_token_id, pairs=True).items()}
            logits, labels = completion_forward(model, b["input_ids"], b["attention_mask"],
                                                b["labels"])
            c, r = sequence_logps(logits, labels).double().cpu().chunk(2)
            chosen[idx], rejected[idx] = c, r
    table = {"format": FORMAT, "ids": [e.id for e in examples], "chosen": chosen,
             "rejected": rejected, "data_sha256": sha256_file(prefs_path),
             "model_fingerprint": model_fingerprint(model_dir), "max_length": max_length,
             "long_prompts": long_prompts, "stats": stats.as_dict()}
    with atomic_path(out_path) as tmp:
        torch.save(table, tmp)
    log.info("reference log-probs of %d pairs -> %s", len(examples), out_path)
    return table


def load(path: str | Path, *, data_path: str | Path, max_length: int,
         reference_dir: str | Path | None = None, long_prompts: str = "drop"
         ) -> dict[str, tuple[float, float]]:
    """``{row id: (chosen_logp, rejected_logp)}``; raises if the table does not match."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"reference log-probs {p} do not exist (run the ref_logps rule)")
    table = torch.load(p, weights_only=False)
    if table.get("format") != FORMAT:
        raise StaleReferenceError(f"{p}: unknown format {table.get('format')}")
    if table["data_sha256"] != sha256_file(data_path):
        raise StaleReferenceError(f"{p} was computed on another version of {data_path}; "
                                  "recompute it")
    if table["max_length"] != max_length or table.get("long_prompts") != long_prompts:
        raise StaleReferenceError(f"{p} was computed with max_length={table['max_length']}, "
                                  f"long_prompts={table.get('long_prompts')}; DPO uses "
                                  f"max_length={max_length}, long_prompts={long_prompts}")
    if reference_dir is not None and table["model_fingerprint"] != model_fingerprint(
            reference_dir):
        raise StaleReferenceError(f"{p} was computed with another reference model than "
                                  f"{reference_dir}; recompute it")
    seen: dict[str, int] = {}
    for k, i in enumerate(table["ids"]):
        if i in seen:
            raise StaleReferenceError(f"{p}: duplicate id {i!r} (rows {seen[i] + 1} and {k + 1} "
                                      f"of the table; data lines in {data_path}); recompute it")
        seen[i] = k
    return {i: (float(c), float(r)) for i, c, r in zip(
        table["ids"], table["chosen"].tolist(), table["rejected"].tolist(), strict=True)}
