"""The LM head runs only from the first trained position on (``logits_to_keep``), with exactly
the log-probs and losses of full logits, for DPO pairs and SFT, with and without the kwarg."""

from __future__ import annotations

import pytest
import torch

from prefbias.io import write_jsonl
from prefbias.models.load import load_causal_lm, load_tokenizer
from prefbias.train import synthetic
from prefbias.train.batching import collate, encode_pairs
from prefbias.train.losses import sequence_logps, sft_loss
from prefbias.train.tasks import completion_forward


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_model):
    d = tmp_path_factory.mktemp("completion")
    model_dir = synthetic_model(seed=4)
    tok = load_tokenizer(model_dir)
    write_jsonl(d / "p.jsonl", synthetic.pref_rows(6, seed=5))
    examples, _ = encode_pairs(d / "p.jsonl", tok, max_length=128)
    model = load_causal_lm(model_dir, dtype=torch.float32, device="cpu").eval()
    return model, collate(examples, tok.pad_token_id, pairs=True)


class _NoKeep(torch.nn.Module):
    """A causal LM whose forward has no ``logits_to_keep`` (older or custom models)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, use_cache=False):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


@pytest.mark.parametrize("wrap", [False, True], ids=["logits_to_keep", "sliced"])
def test_same_logps_and_losses_as_full_logits(setup, wrap):
    model, b = setup
    ids, att, labels = b["input_ids"], b["attention_mask"], b["labels"]
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=att, use_cache=False).logits
        logits, kept = completion_forward(_NoKeep(model) if wrap else model, ids, att, labels)
    first = int((labels[:, 1:] != -100).any(0).nonzero()[0])
    assert first > 0, "the fixture must have a prompt region to skip"
    assert logits.shape[:2] == kept.shape == (ids.size(0), ids.size(1) - first)
    # summed log-probs reach ~150 here: float32 resolution there is ~1.5e-5, and slicing the
    # hidden states before the head changes the matmul's blocking (last-bit differences)
    torch.testing.assert_close(sequence_logps(logits, kept), sequence_logps(full, labels),
                               rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(sequence_logps(logits, kept, average=True),
                               sequence_logps(full, labels, average=True), rtol=0, atol=1e-6)
    torch.testing.assert_close(sft_loss(logits, kept), sft_loss(full, labels), rtol=0, atol=1e-6)


def test_gradients_match_full_logits(setup):
    model, b = setup
    ids, att, labels = b["input_ids"], b["attention_mask"], b["labels"]
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(loss):
        return torch.autograd.grad(loss, params, allow_unused=True)

    full = grads(sequence_logps(model(input_ids=ids, attention_mask=att).logits, labels).sum())
    part = grads(sequence_logps(*completion_forward(model, ids, att, labels)).sum())
    for g_full, g_part in zip(full, part, strict=True):
        if g_full is None:
            assert g_part is None
        else:
            torch.testing.assert_close(g_part, g_full, rtol=1e-4, atol=1e-6)
