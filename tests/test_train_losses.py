"""Loss functions: hand-computed values and parity with TRL 1.16 (test-only dependency)."""

from __future__ import annotations

import math

import pytest
import torch

from prefbias.train.losses import dpo_loss, orpo_log_odds, orpo_loss, sequence_logps, sft_loss


def test_sft_loss_hand_computed():
    # vocab 2; position 1 predicted from logits[0] = [0, 0] -> -log 0.5; position 2 ignored.
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)], [5.0, 5.0]]])
    labels = torch.tensor([[-100, 1, -100]])
    assert sft_loss(logits, labels).item() == pytest.approx(math.log(2.0), abs=1e-6)
    labels = torch.tensor([[-100, 1, 1]])  # + position 2 from logits[1]: p(1) = 3/4
    want = (math.log(2.0) - math.log(0.75)) / 2
    assert sft_loss(logits, labels).item() == pytest.approx(want, abs=1e-6)
    assert sequence_logps(logits, labels).item() == pytest.approx(-2 * want, abs=1e-6)
    assert sequence_logps(logits, labels, average=True).item() == pytest.approx(-want, abs=1e-6)


def test_dpo_loss_hand_computed():
    pc, pr = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -1.0])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-1.5, -2.0])
    loss, cr, rr_ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # margins: (0.5 - -0.5) = 1.0 ; (-1 - 1) = -2.0
    want = (math.log1p(math.exp(-0.1)) + math.log1p(math.exp(0.2))) / 2
    assert loss.item() == pytest.approx(want, abs=1e-6)
    assert cr.tolist() == pytest.approx([0.05, -0.1])
    assert rr_.tolist() == pytest.approx([-0.05, 0.1])
    same = dpo_loss(pc, pr, pc, pr, beta=0.5)[0]
    assert same.item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_orpo_loss_hand_computed():
    c, r = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.2)])
    # odds 1 vs 0.25 -> log-odds ratio log 4
    assert orpo_log_odds(c, r).item() == pytest.approx(math.log(4.0), abs=1e-6)
    nll = torch.tensor(2.0)
    loss, lo = orpo_loss(c, r, lam=0.1, chosen_nll=nll)   # TRL's variant: NLL given
    want = 2.0 - 0.1 * math.log(1 / (1 + math.exp(-math.log(4.0))))
    assert loss.item() == pytest.approx(want, abs=1e-6)
    # LLaMA-Factory's: NLL = −(mean token log-prob of the chosen response) = log 2
    loss, _ = orpo_loss(c, r, lam=0.1)
    assert loss.item() == pytest.approx(math.log(2.0) + 0.1 * math.log(1.25), abs=1e-6)
    # stable for very small and near-zero log-probs
    lo = orpo_log_odds(torch.tensor([-1e-7, -80.0]), torch.tensor([-50.0, -1e-7]))
    assert torch.isfinite(lo).all()


def _lf_orpo(chosen_tokens: list[list[float]], rejected_tokens: list[list[float]], beta: float
             ) -> float:
    """LLaMA-Factory's ORPO loss written out from its source (CustomDPOTrainer): logps = sum of
    the response's token log-probs / its number of tokens (loss_type orpo); per example
    −c + β·(−log σ(log-odds)), log-odds = (c − r) − (log1p(−e^c) − log1p(−e^r)); mean over the
    batch."""
    out = []
    for ct, rt in zip(chosen_tokens, rejected_tokens, strict=True):
        c, r = sum(ct) / len(ct), sum(rt) / len(rt)
        lo = (c - r) - (math.log1p(-math.exp(c)) - math.log1p(-math.exp(r)))
        out.append(-c + beta * -math.log(1 / (1 + math.exp(-lo))))
    return sum(out) / len(out)


def test_orpo_nll_is_a_mean_of_per_example_means():
    """Hand numbers: a 2-token answer (log-probs −1, −3: mean −2) next to a 4-token one (−0.5
    each: mean −0.5). LLaMA-Factory's NLL is (2 + 0.5)/2 = 1.25; a token mean pooled over the
    micro-batch would be (1 + 3 + 4·0.5)/6 = 1.0, shrinking the short answer's weight."""
    chosen = [[-1.0, -3.0], [-0.5] * 4]
    rejected = [[-3.0, -3.0, -3.0], [-1.0, -1.0]]
    c = torch.tensor([-2.0, -0.5])
    r = torch.tensor([-3.0, -1.0])
    loss, lo = orpo_loss(c, r, lam=0.1)
    # log-odds by hand: ex 1: 1 − (log(1−e^−2) − log(1−e^−3)) = 1.0943443; ex 2: 0.5 −
    # (log(1−e^−0.5) − log(1−e^−1)) = 0.5 − (−0.9327521 + 0.4586751) = 0.9740770
    assert lo.tolist() == pytest.approx([1.0943443, 0.9740770], abs=1e-6)
    want = 1.25 + 0.1 * (math.log1p(math.exp(-1.0943443)) + math.log1p(math.exp(-0.9740770))) / 2
    assert loss.item() == pytest.approx(want, abs=1e-6)
    assert loss.item() == pytest.approx(_lf_orpo(chosen, rejected, 0.1), abs=1e-6)
    pooled = orpo_loss(c, r, lam=0.1, chosen_nll=torch.tensor(1.0))[0]
    assert loss.item() - pooled.item() == pytest.approx(0.25, abs=1e-6)


def test_orpo_task_matches_llama_factory_formula(synthetic_model):
    """ORPOTask on a real (tiny Qwen2) model and a right-padded batch of two pairs whose chosen
    responses differ in length equals the LLaMA-Factory formula on the model's own per-token
    log-probs (computed here from a plain log-softmax over the full logits)."""
    from prefbias.models.load import load_causal_lm
    from prefbias.train.batching import Encoded
    from prefbias.train.tasks import ORPOTask

    model = load_causal_lm(synthetic_model(seed=4), dtype=torch.float32, device="cpu")
    ex = [Encoded("a", [5, 6, 7], [[8, 9], [10, 11, 12, 13, 14]]),
          Encoded("b", [5, 6], [[15, 16, 17, 18, 19, 20], [21]])]
    task = ORPOTask(pad_id=0, lam=0.1)
    batch = task.collate(ex, "cpu")
    with torch.no_grad():
        ours, _, _ = task._compute(model, batch)
        lp = torch.log_softmax(model(input_ids=batch["input_ids"],
                                     attention_mask=batch["attention_mask"]).logits, -1)
    toks = []
    for row, e in enumerate([ex[0], ex[1], ex[0], ex[1]]):
        k = 0 if row < 2 else 1
        p = len(e.prompt)
        comp = e.completions[k]
        toks.append([lp[row, p + t - 1, tid].item() for t, tid in enumerate(comp)])
    want = _lf_orpo(toks[:2], toks[2:], 0.1)
    assert ours.item() == pytest.approx(want, abs=1e-5)
    # and not the pooled-token variant
    pooled_nll = -sum(sum(t) for t in toks[:2]) / sum(len(t) for t in toks[:2])
    per_example_nll = -sum(sum(t) / len(t) for t in toks[:2]) / 2
    assert abs(pooled_nll - per_example_nll) > 1e-3
