"""What one training step computes, per recipe: SFT, DPO (precomputed reference), ORPO.

A task turns a list of :class:`~prefbias.train.batching.Encoded` examples into a collated batch
and computes ``(loss, per_example)``; ``per_example`` holds detached tensors that eval aggregates
(``loss`` weight, rewards, ...). ``eval_stats`` returns ``(sums, examples)``: the sums that
``finish_eval`` turns into the logged eval metrics, and per-example columns (one value per
example of the batch, in batch order) that the final eval writes to ``eval_examples.jsonl`` for
the bootstrap CIs of Table 3.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F

from prefbias.train.batching import Encoded, collate
from prefbias.train.losses import (
    IGNORE,
    dpo_loss,
    orpo_loss,
    sequence_logps,
    sft_loss,
    token_logps,
)


def _forward(model, batch):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 use_cache=False).logits


def _takes_logits_to_keep(model) -> bool:
    """Whether the causal LM under any wrappers (DDP's ``module``, peft's base model, which pass
    keyword arguments through) accepts ``logits_to_keep``; decided once per model class."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None and hasattr(model, "get_base_model"):
            inner = model.get_base_model()
        if inner is None or inner is model:
            return _forward_has_logits_to_keep(type(model))
        model = inner


@functools.cache
def _forward_has_logits_to_keep(cls: type) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def completion_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)`` for the positions from which a trained token is predicted onwards.

    Positions before the earliest trained label of the batch (the prompt region) never reach the
    LM head: transformers' ``logits_to_keep`` slices the hidden states before the head, so the
    (tokens x vocabulary) matmul and the fp32 logits tensor are not computed for prompts (at
    Qwen2.5's 151,936-token vocabulary the head is about a quarter of the model's FLOPs). The
    returned labels are sliced to match, so :func:`token_logps` / :func:`sft_loss` give exactly
    what they give on full logits. Models without ``logits_to_keep`` get full logits, sliced."""
    seq = labels.size(1)
    trained = (labels[:, 1:] != IGNORE).any(0).nonzero()
    first = int(trained[0]) if trained.numel() else 0  # logits[first] predicts labels[first + 1]
    keep = seq - first
    if keep < seq and _takes_logits_to_keep(model):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                       logits_to_keep=keep).logits
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       use_cache=False).logits
    logits = logits[:, -keep:]
    return logits, labels[:, seq - keep:]


def _completion(model, batch):
    return completion_forward(model, batch["input_ids"], batch["attention_mask"],
                              batch["labels"])


class SFTTask:
    kind = "sft"
    pairs = False
    eval_keys = ("loss_sum", "n")

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, examples: list[Encoded], device) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in collate(examples, self.pad_id, pairs=False).items()}

    def loss(self, model, batch):
        logits, labels = _completion(model, batch)
        loss = sft_loss(logits, labels)
        return loss, {}

    def eval_stats(self, model, batch):
        logits, labels = _completion(model, batch)
        logps, mask = token_logps(logits, labels)
        nll, n = -logps.sum(-1), mask.sum(-1).float()
        return ({"loss_sum": float(nll.sum()), "n": float(n.sum())},
                {"nll_sum": nll.tolist(), "n_tokens": n.tolist()})

    @staticmethod
    def finish_eval(s: dict[str, float]) -> dict[str, float]:
        return {"loss": s["loss_sum"] / max(s["n"], 1.0)}


class DPOTask:
    """Sigmoid DPO; reference log-probs come from a table keyed by example id (never a model)."""
    kind = "dpo"
    pairs = True
    eval_keys = ("loss_sum", "n", "acc_sum", "margin_sum", "chosen_sum", "rejected_sum")

    def __init__(self, pad_id: int, beta: float, ref: dict[str, tuple[float, float]]):
        self.pad_id, self.beta, self.ref = pad_id, beta, ref

    def collate(self, examples, device):
        batch = collate(examples, self.pad_id, pairs=True)
        refs = torch.tensor([self.ref[e.id] for e in examples], dtype=torch.float32)
        batch["ref_chosen"], batch["ref_rejected"] = refs[:, 0], refs[:, 1]
        return {k: v.to(device) for k, v in batch.items()}

    def _compute(self, model, batch):
        logps = sequence_logps(*_completion(model, batch))
        pc, pr = logps.chunk(2)
        return dpo_loss(pc, pr, batch["ref_chosen"], batch["ref_rejected"], self.beta)

    def loss(self, model, batch):
        loss, cr, rr = self._compute(model, batch)
        return loss, {"chosen_reward": cr, "rejected_reward": rr}

    def eval_stats(self, model, batch):
        loss, cr, rr = self._compute(model, batch)
        n = cr.numel()
        return ({"loss_sum": float(loss) * n, "n": float(n),
                 "acc_sum": float((cr > rr).float().sum()), "margin_sum": float((cr - rr).sum()),
                 "chosen_sum": float(cr.sum()), "rejected_sum": float(rr.sum())},
                self.eval_examples(cr, rr))

    @staticmethod
    def eval_examples(cr: torch.Tensor, rr: torch.Tensor) -> dict[str, list[float]]:
        """Per pair: the DPO loss −log σ(r_c − r_r) (rewards are β-scaled) and correctness."""
        return {"loss": (-F.logsigmoid(cr - rr)).tolist(), "correct": (cr > rr).float().tolist(),
                "margin": (cr - rr).tolist()}

    @staticmethod
    def finish_eval(s):
        n = max(s["n"], 1.0)
        return {"loss": s["loss_sum"] / n, "reward_accuracy": s["acc_sum"] / n,
                "reward_margin": s["margin_sum"] / n, "chosen_reward": s["chosen_sum"] / n,
                "rejected_reward": s["rejected_sum"] / n}


class ORPOTask(DPOTask):
    """ORPO (Hong et al. 2024) as LLaMA-Factory computes it: per example, the chosen response's
    mean token NLL plus λ·(−log σ(log-odds)) from mean token log-probs, then the mean over the
    examples (:func:`orpo_loss`). ``nll_on_prompt=True`` reproduces TRL's variant instead (NLL
    over prompt + response, a token mean pooled over the batch).
    Rewards (for logging, as TRL and LLaMA-Factory) are λ·(mean completion log-prob)."""
    kind = "orpo"

    def __init__(self, pad_id: int, lam: float, nll_on_prompt: bool = False):
        self.pad_id, self.lam, self.nll_on_prompt = pad_id, lam, nll_on_prompt

    def collate(self, examples, device):
        return {k: v.to(device) for k, v in collate(examples, self.pad_id, pairs=True).items()}

    def _compute(self, model, batch):
        if self.nll_on_prompt:  # the NLL needs the prompt's logits too
            logits, labels = _forward(model, batch), batch["labels"]
        else:
            logits, labels = _completion(model, batch)
        mean_logps = sequence_logps(logits, labels, average=True)
        c, r = mean_logps.chunk(2)
        if self.nll_on_prompt:
            half = logits.size(0) // 2
            nll_labels = batch["input_ids"][:half].masked_fill(
                batch["attention_mask"][:half] == 0, -100)
            loss, _ = orpo_loss(c, r, self.lam, chosen_nll=sft_loss(logits[:half], nll_labels))
        else:
            loss, _ = orpo_loss(c, r, self.lam)
        return loss, (self.lam * c).detach(), (self.lam * r).detach()

    @staticmethod
    def eval_examples(cr: torch.Tensor, rr: torch.Tensor) -> dict[str, list[float]]:
        """Per pair: correctness and reward margin."""
        return {"correct": (cr > rr).float().tolist(), "margin": (cr - rr).tolist()}
