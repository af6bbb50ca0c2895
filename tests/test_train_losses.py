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
    loss, lo = orpo_loss(c, r, nll, lam=0.1)
    want = 2.0 - 0.1 * math.log(1 / (1 + math.exp(-math.log(4.0))))
    assert loss.item() == pytest.approx(want, abs=1e-6)
    # stable for very small and near-zero log-probs
    lo = orpo_log_odds(torch.tensor([-1e-7, -80.0]), torch.tensor([-50.0, -1e-7]))
    assert torch.isfinite(lo).all()
