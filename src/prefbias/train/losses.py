"""Training losses: SFT next-token NLL, sigmoid DPO (Rafailov et al. 2023), ORPO (Hong et al. 2024).

All functions take ``logits``/log-prob tensors and return plain tensors; nothing here knows about
models or data. Label convention: ``labels`` has the same shape as ``input_ids`` with ``-100`` on
every position that is not trained (prompt, padding); position ``t`` is predicted from ``t-1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of ``labels`` (shifted) and the mask of trained positions.

    Returns ``(logps, mask)`` of shape ``(batch, seq-1)``; ``logps`` is 0 where ``mask`` is False.
    Uses gather − logsumexp, so no ``(batch, seq, vocab)`` log-softmax copy is materialised.
    """
    logits = logits[:, :-1, :]
    target = labels[:, 1:]
    mask = target != IGNORE
    safe = target.masked_fill(~mask, 0)
    picked = torch.gather(logits, 2, safe.unsqueeze(-1)).squeeze(-1).float()
    lse = torch.logsumexp(logits.float(), dim=-1)
    return (picked - lse) * mask, mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, *, average: bool = False
                   ) -> torch.Tensor:
    """Summed (or per-token averaged) completion log-probability of each sequence."""
    logps, mask = token_logps(logits, labels)
    total = logps.sum(-1)
    if average:
        return total / mask.sum(-1).clamp(min=1)
    return total


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over the trained (label != -100) tokens of the batch."""
    vocab = logits.size(-1)
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, vocab).float(),
                           labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO on summed completion log-probs -> ``(loss, chosen_rewards, rejected_rewards)``.

    loss = −mean log σ(β·[(π_c − ref_c) − (π_r − ref_r)]); rewards are β·(π − ref), detached.
    """
    chosen_ratio = policy_chosen_logps.float() - ref_chosen_logps.float()
    rejected_ratio = policy_rejected_logps.float() - ref_rejected_logps.float()
    loss = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio)).mean()
    return loss, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x < 0, stable on both sides of −ln 2."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)),
                       torch.log(-torch.expm1(x)))


def orpo_log_odds(chosen_logps_mean: torch.Tensor, rejected_logps_mean: torch.Tensor
                  ) -> torch.Tensor:
    """log [odds(y_w|x) / odds(y_l|x)] with odds(y|x) = P/(1−P), P = exp(mean token log-prob)."""
    c, r = chosen_logps_mean.float(), rejected_logps_mean.float()
    return (c - r) - (log1mexp(c) - log1mexp(r))


def orpo_loss(chosen_logps_mean: torch.Tensor, rejected_logps_mean: torch.Tensor, lam: float,
              *, chosen_nll: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ORPO -> ``(loss, log_odds)``.

    Default (LLaMA-Factory's ``odds_ratio_loss``, Hong et al. eq. 6): per example
    ``loss_i = −c_i − λ·log σ(log-odds_i)`` with ``c_i`` the chosen response's *mean* token
    log-prob, then the mean over the examples — every example's NLL weighs the same whatever its
    length. ``chosen_nll`` (a scalar) replaces the ``−mean_i c_i`` term: TRL's variant passes the
    token-mean NLL pooled over the batch (and over prompt + response)."""
    log_odds = orpo_log_odds(chosen_logps_mean, rejected_logps_mean)
    if chosen_nll is None:
        loss = (-chosen_logps_mean.float() - lam * F.logsigmoid(log_odds)).mean()
    else:
        loss = chosen_nll - lam * F.logsigmoid(log_odds).mean()
    return loss, log_odds.detach()
