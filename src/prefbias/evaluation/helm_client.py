"""A crfm-helm 0.5.16 client for local checkpoints whose log-probs are real (helm-offline.md fix 3).

The stock ``HuggingFaceClient`` turns temperature 0 into 1e-7, samples, and reads log-probs from
``generate(...).scores`` *after* the temperature warper, so every greedy token gets log-prob 0,
``max_prob`` is 1 everywhere and HELM silently skips calibration (no ``ece_10_bin``). This client
decodes greedily at temperature 0, generates with ``output_logits=True`` and takes log-softmax of
the *raw* logits, so ``max_prob`` is the model's own probability of its answer.

``apply_chat_template`` is explicit (fix 2): when true, generation prompts are wrapped as one user
turn with the tokenizer's chat template; log-prob-only requests (``echo_prompt`` with
``max_tokens == 0``, used by HellaSwag's ``multiple_choice_separate_original``) score the raw text
either way, since HELM reads the continuation's log-probs from the tail of the echoed prompt.

Loaded by HELM from ``model_deployments.yaml`` (``class_name`` =
``prefbias.evaluation.helm_client.RawLogitsHuggingFaceClient``) and passed to ``helm-run
--plugins`` so import errors surface at start-up. Runs inside the HELM environment only.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from helm.clients.client import CachingClient, truncate_sequence
from helm.common.cache import CacheConfig
from helm.common.request import (
    EMBEDDING_UNAVAILABLE_REQUEST_RESULT,
    GeneratedOutput,
    Request,
    RequestResult,
    Token,
    wrap_request_time,
)
from transformers import StoppingCriteria, StoppingCriteriaList

CLIENT_VERSION = "prefbias-raw-logits-1"


class _StopOnText(StoppingCriteria):
    """Stopping criterion: any stop sequence appears in the newly generated text."""

    def __init__(self, tokenizer, stops: list[str], prompt_len: int):
        super().__init__()
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        done = []
        for row in input_ids:
            text = self.tokenizer.decode(row[self.prompt_len:], skip_special_tokens=True)
            done.append(any(s in text for s in self.stops))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _Server:
    """One loaded model + tokenizer; requests are served one at a time."""

    _servers: dict[str, _Server] = {}
    _lock = threading.Lock()

    def __init__(self, path: str, apply_chat_template: bool):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = "cuda:0" if torch.cuda.is_available() else "cpu"
        from prefbias.models.load import eval_dtype

        # the same dtype as every other consumer: bf16 on CUDA, fp32 on CPU, or the model's
        # recorded dtype (an ORPO+LoRA model is evaluated in fp32, models/load.py)
        dtype = eval_dtype(path, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device)
        self.model.eval()
        self.apply_chat_template = apply_chat_template
        self.lock = threading.Lock()

    @classmethod
    def get(cls, path: str, apply_chat_template: bool) -> _Server:
        key = f"{path}|{apply_chat_template}"
        with cls._lock:
            if key not in cls._servers:
                cls._servers[key] = cls(path, apply_chat_template)
            return cls._servers[key]

    def _encode(self, prompt: str, chat: bool) -> list[int]:
        tok = self.tokenizer
        if chat and tok.chat_template:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                           add_generation_prompt=True, tokenize=False)
            return tok(text, add_special_tokens=False)["input_ids"]
        return tok(prompt)["input_ids"]

    @torch.no_grad()
    def _prompt_logprobs(self, ids: list[int]) -> list[float]:
        x = torch.tensor([ids], device=self.device)
        logits = self.model(x).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        # The first token has no context: log-prob 0 (as the stock client does).
        return [0.0] + [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]

    @torch.no_grad()
    def serve(self, raw: dict[str, Any]) -> dict[str, Any]:
        tok = self.tokenizer
        logprob_only = raw["max_new_tokens"] == 0 and raw["echo_prompt"]
        ids = self._encode(raw["prompt"], self.apply_chat_template and not logprob_only)
        n = max(1, int(raw["num_return_sequences"]))
        prompt_logprobs = self._prompt_logprobs(ids) if raw["echo_prompt"] else []
        prompt_tokens = [tok.decode([t]) for t in ids] if raw["echo_prompt"] else []
        if logprob_only:
            text = tok.decode(ids)
            return {"completions": [{"text": text, "tokens": prompt_tokens, "logprobs": [],
                                     "prompt_logprobs": prompt_logprobs}] * n,
                    "input_length": len(ids)}

        x = torch.tensor([ids], device=self.device)
        greedy = raw["temperature"] <= 1e-6
        gen_args: dict[str, Any] = dict(max_new_tokens=raw["max_new_tokens"],
                                        num_return_sequences=n, return_dict_in_generate=True,
                                        output_logits=True, pad_token_id=tok.pad_token_id
                                        if tok.pad_token_id is not None else tok.eos_token_id)
        if greedy:
            gen_args.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            gen_args.update(do_sample=True, temperature=raw["temperature"], top_p=raw["top_p"],
                            top_k=0)
        if raw["stop_sequences"]:
            gen_args["stopping_criteria"] = StoppingCriteriaList(
                [_StopOnText(tok, raw["stop_sequences"], len(ids))])
        out = self.model.generate(x, attention_mask=torch.ones_like(x), **gen_args)
        # out.logits: one (n, vocab) tensor per generated step, before any logits processor.
        steps = torch.stack(out.logits, dim=1).float() if out.logits else None
        eos = set(self.model.generation_config.eos_token_id
                  if isinstance(self.model.generation_config.eos_token_id, list)
                  else [self.model.generation_config.eos_token_id])
        completions = []
        for k in range(n):
            new = out.sequences[k, len(ids):].tolist()
            logp = torch.log_softmax(steps[k], dim=-1) if steps is not None else None
            gen_ids, gen_lp = [], []
            for i, t in enumerate(new):
                if t in eos or (tok.pad_token_id is not None and t == tok.pad_token_id
                                and i > 0 and new[i - 1] in eos):
                    break
                gen_ids.append(t)
                gen_lp.append(logp[i, t].item())
            completions.append({
                "text": (tok.decode(ids) if raw["echo_prompt"] else "") + tok.decode(gen_ids),
                "tokens": prompt_tokens + [tok.decode([t]) for t in gen_ids],
                "logprobs": gen_lp,
                "prompt_logprobs": prompt_logprobs,
            })
        return {"completions": completions, "input_length": len(ids)}


class RawLogitsHuggingFaceClient(CachingClient):
    """HELM client for a local ``from_pretrained`` directory, with raw-logit log-probs."""

    def __init__(self, cache_config: CacheConfig, pretrained_model_name_or_path: str,
                 apply_chat_template: bool = False, **kwargs: Any):
        super().__init__(cache_config=cache_config)
        self.path = pretrained_model_name_or_path
        self.apply_chat_template = bool(apply_chat_template)

    def make_request(self, request: Request) -> RequestResult:
        if request.embedding:
            return EMBEDDING_UNAVAILABLE_REQUEST_RESULT
        raw = {
            "client": CLIENT_VERSION,
            "engine": request.model_engine,
            "prompt": request.prompt,
            "temperature": float(request.temperature),
            "num_return_sequences": request.num_completions,
            "max_new_tokens": request.max_tokens,
            "top_p": request.top_p,
            "echo_prompt": request.echo_prompt,
            "stop_sequences": list(request.stop_sequences),
            "apply_chat_template": self.apply_chat_template,
        }
        server = _Server.get(self.path, self.apply_chat_template)
        try:
            def do_it() -> dict[str, Any]:
                with server.lock:
                    return server.serve(raw)

            cache_key = CachingClient.make_cache_key(raw, request)
            response, cached = self.cache.get(cache_key, wrap_request_time(do_it))
        except Exception as e:  # noqa: BLE001 - HELM expects a failed RequestResult, not a raise
            return RequestResult(success=False, cached=False, error=f"prefbias HF error: {e}",
                                 completions=[], embedding=[])

        completions = []
        n_prompt = response["input_length"]
        for rc in response["completions"]:
            tokens: list[Token] = []
            total = 0.0
            if request.echo_prompt:
                for text, lp in zip(rc["tokens"][:n_prompt], rc["prompt_logprobs"], strict=False):
                    tokens.append(Token(text=text, logprob=lp))
                    total += lp
                gen_tokens = rc["tokens"][n_prompt:]
            else:
                gen_tokens = rc["tokens"]
            for text, lp in zip(gen_tokens, rc["logprobs"], strict=False):
                tokens.append(Token(text=text, logprob=lp))
                total += lp
            out = GeneratedOutput(text=rc["text"], logprob=total, tokens=tokens)
            completions.append(truncate_sequence(out, request))
        return RequestResult(success=True, cached=cached, request_time=response["request_time"],
                             request_datetime=response.get("request_datetime"),
                             completions=completions, embedding=[])
