"""Merge a trained LoRA adapter into its base weights without losing the update.

``peft``'s ``merge_and_unload()`` adds ``B @ A * scaling`` in place into the base weight's own
dtype. With bf16 base weights and bf16 adapter weights the delta is rounded to bf16 first and the
sum rounded again (double rounding); at saa-orpo's lr 5e-7 the delta is ~1e-5 of a weight and the
result is no longer the correctly rounded ``base + delta``. :func:`merge_lora` upcasts every
LoRA-wrapped base weight (and the adapter) to fp32, merges there, and casts the merged weights back
to the dtype the base weights had (or to ``dtype``): each merged weight is then
``round(base + delta)`` in that dtype, computed once from the exact fp32 sum.

Note: a bf16 *output* still cannot hold a delta far below the bf16 spacing of the weight (round
to nearest keeps about ``|delta| / ulp`` of it). Pass ``dtype=torch.float32`` to keep all of it:
``train.loop.write_outputs`` does, and the model is evaluated in fp32 (docs/FIDELITY.md, "ORPO+LoRA
models evaluated as trained").
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _lora_layers(model) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def merge_lora(model, *, dtype: Any = None):
    """Merge the active LoRA adapter of the ``PeftModel`` ``model`` in fp32; return the base
    model with merged weights in ``dtype`` (default: the dtype the base weights had)."""
    import torch

    layers = _lora_layers(model)
    if not layers:
        raise ValueError("merge_lora: the model has no LoRA layer (not a LoRA PeftModel?)")
    orig = {layer.get_base_layer().weight.dtype for layer in layers}
    if dtype is None:
        if len(orig) != 1:
            raise ValueError(f"merge_lora: base weights have mixed dtypes {sorted(map(str, orig))}"
                             "; pass dtype")
        dtype = next(iter(orig))
    for layer in layers:
        base = layer.get_base_layer()
        base.weight.data = base.weight.data.to(torch.float32)
        if getattr(base, "bias", None) is not None:
            base.bias.data = base.bias.data.to(torch.float32)
        for name in ("lora_A", "lora_B"):
            for sub in getattr(layer, name).values():
                sub.to(torch.float32)
    merged = model.merge_and_unload()
    for layer in layers:
        base = layer.get_base_layer()
        base.weight.data = base.weight.data.to(dtype)
        if getattr(base, "bias", None) is not None:
            base.bias.data = base.bias.data.to(dtype)
    log.info("merged %d LoRA layers in fp32, stored as %s", len(layers), dtype)
    return merged
