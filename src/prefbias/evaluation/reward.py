"""Reward-model win rate (stylized-dpo Table 3).

For the first ``n_prompts`` prompts of the reward prompt set, the reward model scores each
model's answer and the baseline model's answer to the same prompt: a higher reward is a win (1),
equal rewards (``|diff| <= tie_eps``) a tie (0.5), else a loss (0). The win rate is the mean over
prompts; the CI is a seeded percentile bootstrap over prompts.

Reward backends: ``hf`` (a local model, scored as ``scoring`` says: ``token0_logit``, the
Nemotron-70B-Reward-HF way, or ``sequence_classifier``; see :class:`HFRewardModel`) or
``openai`` (an OpenAI-compatible reward endpoint such as NVIDIA's Nemotron reward API, which
answers a chat completion whose content is ``reward:<float>``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefbias.evaluation.judge import make_api_client, read_generations
from prefbias.evaluation.stats import bootstrap_ci
from prefbias.io import DataError, write_json

log = logging.getLogger(__name__)


def outcome(reward: float, baseline_reward: float, tie_eps: float = 0.0) -> float:
    diff = reward - baseline_reward
    if abs(diff) <= tie_eps:
        return 0.5
    return 1.0 if diff > 0 else 0.0


def win_rate(rewards: Sequence[float], baseline_rewards: Sequence[float], *,
             tie_eps: float = 0.0, n_boot: int = 1000, seed: int = 0,
             ci: float = 0.95) -> dict[str, Any]:
    if len(rewards) != len(baseline_rewards):
        raise ValueError("rewards and baseline rewards differ in length")
    outs = [outcome(a, b, tie_eps) for a, b in zip(rewards, baseline_rewards, strict=True)]
    n = len(outs)
    lo, hi = bootstrap_ci(outs, n=n_boot, seed=seed, ci=ci)
    return {"n": n, "wins": sum(o == 1.0 for o in outs), "ties": sum(o == 0.5 for o in outs),
            "losses": sum(o == 0.0 for o in outs), "win_rate": sum(outs) / n if n else None,
            "ci_low": lo, "ci_high": hi}


SCORINGS = ("token0_logit", "sequence_classifier")


class HFRewardModel:
    """Local reward model, scored as configured in ``reward_winrate.scoring``:

    * ``token0_logit`` (Llama-3.1-Nemotron-70B-Reward-HF, a ``LlamaForCausalLM``): the model card
      applies the chat template to the conversation (user turns + the assistant answer, no
      generation prompt), runs ``generate(max_new_tokens=1, output_scores=True)`` and takes
      ``scores[0][0][0]``: the logit of vocabulary id 0 at the first generated position. One
      forward pass gives the same number (the logits at the last position of the templated
      conversation); we batch with left padding and position ids from the attention mask, as
      ``generate`` does, and keep only the last position's logits. Loaded in bf16 with
      ``device_map="auto"`` over the rule's GPUs on CUDA.
    * ``sequence_classifier``: a one-logit ``*ForSequenceClassification`` model on the same text.
    """

    def __init__(self, model_dir: str | Path, *, scoring: str = "token0_logit",
                 batch_size: int = 4, max_length: int = 4096, device: str | None = None):
        import torch

        from prefbias.models.load import (
            ModelLoadError,
            load_reward_lm,
            load_reward_model,
            load_tokenizer,
        )

        if scoring not in SCORINGS:
            raise ValueError(f"unknown reward scoring {scoring!r} (expected one of {SCORINGS})")
        self.torch = torch
        self.scoring = scoring
        self.path = Path(model_dir)
        left = scoring == "token0_logit"
        self.tok = load_tokenizer(model_dir, padding_side="left" if left else "right")
        if not getattr(self.tok, "chat_template", None):
            raise ModelLoadError(f"reward model {self.path}: its tokenizer has no chat template "
                                 "(the reward is defined on the chat-templated conversation)")
        if left:
            self.model = load_reward_lm(model_dir, device=device)
        else:
            self.model = load_reward_model(model_dir, device=device)
            if getattr(self.model.config, "pad_token_id", None) is None:
                self.model.config.pad_token_id = self.tok.pad_token_id
        self.device = self.model.get_input_embeddings().weight.device
        self.batch_size = batch_size
        self.max_length = max_length

    def text(self, messages: list[dict], response: str) -> str:
        conv = [*messages, {"role": "assistant", "content": response}]
        return self.tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=False)

    def score(self, items: Sequence[tuple[list[dict], str]]) -> list[float]:
        out: list[float] = []
        n_long = 0
        for i in range(0, len(items), self.batch_size):
            texts = [self.text(m, r) for m, r in items[i:i + self.batch_size]]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            n_long += int((enc["attention_mask"].sum(1) > self.max_length).sum())
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with self.torch.no_grad():
                if self.scoring == "token0_logit":
                    mask = enc["attention_mask"]
                    pos = (mask.cumsum(-1) - 1).clamp(min=0)
                    logits = self.model(input_ids=enc["input_ids"], attention_mask=mask,
                                        position_ids=pos, logits_to_keep=1).logits
                    vals = logits[:, -1, 0]
                else:
                    vals = self.model(**enc).logits[:, 0]
            out += [float(x) for x in vals.float().cpu()]
        if n_long:
            log.warning("%d of %d conversations exceed the reward model's %d-token limit; "
                        "scored in full", n_long, len(items), self.max_length)
        return out


_REWARD = re.compile(r"reward\s*[:=]\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_FLOAT = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_reward(text: str) -> float:
    m = _REWARD.search(text) or _FLOAT.search(text)
    if not m:
        raise ValueError(f"no reward in endpoint answer {text[:80]!r}")
    return float(m.group(1) if m.re is _REWARD else m.group(0))


class ApiRewardModel:
    def __init__(self, spec: dict[str, Any], cache_dir: str | Path | None):
        self.client = make_api_client({**spec, "model": spec.get("api_model",
                                                                 spec["reward_model"])},
                                      cache_dir, purpose="reward")

    def score(self, items: Sequence[tuple[list[dict], str]]) -> list[float]:
        from prefbias.evaluation.judge import run_parallel

        def one(item, abort):
            msgs, resp = item
            ans = self.client.complete([*msgs, {"role": "assistant", "content": resp}],
                                       max_tokens=16, abort=abort)
            return parse_reward(ans["text"])

        try:
            return run_parallel(list(items), one, self.client.max_concurrency)
        finally:
            self.client.log_usage()


def run_reward_winrate(spec: dict[str, Any], generations: str | Path, baseline: str | Path,
                       out: str | Path, *, model_name: str, reward_model_dir: str | Path | None,
                       cache_dir: str | Path | None = None) -> dict[str, Any]:
    rm = None
    if spec["backend"] == "openai":
        rm = ApiRewardModel(spec, cache_dir)  # key checked before reading anything
    rows = read_generations(generations)
    base_rows = {r["id"]: r for r in read_generations(baseline)}
    n_prompts = int(spec["n_prompts"])
    pairs = []
    for r in rows:
        if len(pairs) == n_prompts:
            break
        b = base_rows.get(r["id"])
        if b is None:
            raise DataError(baseline, f"no baseline answer for prompt id {r['id']!r}")
        pairs.append((r, b))
    if len(pairs) < n_prompts:
        log.warning("only %d prompts available (n_prompts=%d)", len(pairs), n_prompts)
    if rm is None:
        if reward_model_dir is None:
            raise ValueError("an hf reward model needs --reward-model-dir")
        rm = HFRewardModel(reward_model_dir, scoring=spec["scoring"],
                           batch_size=int(spec["batch_size"]))
    # Identical (prompt, answer) pairs are scored once, so they get identical rewards (a tie).
    items = [(r["messages"], r["response"]) for r, _ in pairs]
    items += [(b["messages"], b["response"]) for _, b in pairs]
    unique: dict[str, int] = {}
    for m, resp in items:
        unique.setdefault(json.dumps([m, resp], sort_keys=True), len(unique))
    keys = list(unique)
    uniq_scores = rm.score([tuple(json.loads(k)) for k in keys])
    scores = [uniq_scores[unique[json.dumps([m, resp], sort_keys=True)]] for m, resp in items]
    rewards, base_rewards = scores[:len(pairs)], scores[len(pairs):]
    boot = spec["bootstrap"]
    tie_eps = float(spec["tie_eps"])
    stats = win_rate(rewards, base_rewards, tie_eps=tie_eps, n_boot=int(boot["n"]),
                     seed=int(boot["seed"]), ci=float(boot["ci"]))
    result = {"model": model_name, "baseline": spec["baseline"], **stats,
              "reward_model": spec["reward_model"],
              "per_prompt": [{"id": r["id"], "reward": a, "baseline_reward": b,
                              "outcome": outcome(a, b, tie_eps)}
                             for (r, _), a, b in zip(pairs, rewards, base_rewards, strict=True)]}
    write_json(out, result)
    log.info("reward win rate of %s vs %s: %.3f over %d prompts", model_name, spec["baseline"],
             result["win_rate"] or float("nan"), result["n"])
    return result
