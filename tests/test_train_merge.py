"""LoRA merge (issue 13.7): merged in fp32, then cast — no double rounding of a tiny update."""

from __future__ import annotations

import pytest
import torch


def _peft_mistral(adapter_dtype):
    """A tiny real MistralForCausalLM in bf16 with a LoRA adapter (all-linear, r=8) whose update
    B @ A * scaling has the size of saa-orpo's lr-5e-7 training (std ~5e-6 of weights ~0.02)."""
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=64)
    model = MistralForCausalLM(cfg).to(torch.bfloat16)
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    deltas, bases = {}, {}
    for name, mod in pm.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            a, b = mod.lora_A["default"].weight, mod.lora_B["default"].weight
            a.data.normal_(0, 1e-3)
            b.data.normal_(0, 1e-3)
            a.data, b.data = a.data.to(adapter_dtype), b.data.to(adapter_dtype)
            key = name.replace("base_model.model.", "") + ".weight"
            deltas[key] = (b.data.float() @ a.data.float()) * mod.scaling["default"]
            bases[key] = mod.get_base_layer().weight.detach().clone()
    return pm, bases, deltas


@pytest.mark.parametrize("adapter_dtype", [torch.bfloat16, torch.float32])
def test_merged_bf16_equals_rounded_exact_sum(adapter_dtype):
    from prefbias.train.merge import merge_lora

    pm, bases, deltas = _peft_mistral(adapter_dtype)
    assert 2e-6 < torch.cat([d.flatten() for d in deltas.values()]).std() < 2e-5
    merged = merge_lora(pm)
    sd = merged.state_dict()
    assert not any("lora" in k for k in sd)
    for key, delta in deltas.items():
        w = sd[key]
        assert w.dtype == torch.bfloat16, key
        exact_sum = bases[key].float() + delta
        # within bf16 rounding of the SUM: exactly the round-to-nearest of the fp32 sum
        assert torch.equal(w, exact_sum.to(torch.bfloat16)), key


def test_fp32_output_keeps_the_whole_update():
    from prefbias.train.merge import merge_lora

    pm, bases, deltas = _peft_mistral(torch.bfloat16)
    merged = merge_lora(pm, dtype=torch.float32)
    sd = merged.state_dict()
    for key, delta in deltas.items():
        got = sd[key].float() - bases[key].float()
        assert sd[key].dtype == torch.float32
        torch.testing.assert_close(got, delta, rtol=0, atol=1e-8)  # fp32 ulp of ~0.1


def test_peft_bf16_merge_double_rounds_what_merge_lora_fixes():
    """The old path (merge_and_unload in bf16) is not round(base + delta) for bf16 adapters."""
    pm, bases, deltas = _peft_mistral(torch.bfloat16)
    sd = pm.merge_and_unload().state_dict()
    mismatched = sum(not torch.equal(sd[k], (bases[k].float() + d).to(torch.bfloat16))
                     for k, d in deltas.items())
    assert mismatched > 0


def test_merge_lora_rejects_a_plain_model():
    from transformers import MistralConfig, MistralForCausalLM

    from prefbias.train.merge import merge_lora

    m = MistralForCausalLM(MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=1))
    with pytest.raises(ValueError, match="no LoRA layer"):
        merge_lora(m)
