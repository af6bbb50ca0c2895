"""``vllm`` backend: offline ``vllm.LLM`` with ``SamplingParams`` (GPU environment only).

vLLM cannot live in the training environment (it pins other torch/transformers versions, see
``envs/vllm.yaml``), so it is imported lazily; without it this backend fails with a clear error.
``tensor_parallel_size`` defaults to the number of visible GPUs, reduced to the largest count that
divides the model's attention heads. Prompts are rendered with the model's chat template and passed
as token ids (so no second BOS is added); every request carries the same ``seed`` in its
``SamplingParams``, which makes outputs independent of batching.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefbias.generation.base import (
    BackendBase,
    ContextOverflowError,
    GenerationError,
    GenRequest,
    GenResult,
    Sampling,
    check_requests,
    model_revision,
    split_prefill,
)

log = logging.getLogger(__name__)


def import_vllm():
    try:
        import vllm  # noqa: PLC0415
    except ImportError as e:
        raise GenerationError(
            "generation backend 'vllm' needs the vllm package, which is not installed in this "
            "environment (it has its own GPU environment: envs/vllm.yaml / the vllm container). "
            "Use backend 'hf' on CPU, or 'openai' against a `vllm serve` endpoint. "
            f"({e})") from e
    return vllm


def visible_gpus() -> int:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0


def pick_tensor_parallel(n_gpus: int, model_dir: str | Path) -> int:
    """Largest tp <= n_gpus dividing the model's attention (and KV) head counts."""
    heads = kv = None
    cfg = Path(model_dir) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text(encoding="utf-8"))
        c = c.get("text_config", c)  # multimodal configs (gemma-3) nest the LM
        heads = c.get("num_attention_heads")
        kv = c.get("num_key_value_heads") or heads
    tp = max(1, n_gpus)
    while tp > 1 and heads and (heads % tp or (kv and kv % tp and tp % kv)):
        tp -= 1
    return tp


def sampling_params(vllm_mod, s: Sampling):
    """Our :class:`Sampling` as ``vllm.SamplingParams`` (top_k 0 -> -1 = disabled)."""
    return vllm_mod.SamplingParams(
        temperature=s.temperature, top_p=s.top_p if not s.greedy else 1.0,
        top_k=s.top_k if s.top_k > 0 else -1, max_tokens=s.max_new_tokens, seed=s.seed,
        stop=list(s.stop) or None)


def llm_kwargs(model_dir: str | Path, *, tensor_parallel_size: int,
               gpu_memory_utilization: float = 0.9, dtype: str = "auto") -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a local HF model directory.

    ``tokenizer_mode="hf"`` and ``config_format="hf"`` always: prompts are rendered with the
    HF chat template (:meth:`VLLMBackend.encode`, the same template as training and the ``hf``
    backend) and re-tokenized by the HF tokenizer. With ``"auto"``, vLLM picks mistral-common
    for Mistral repos that ship ``tokenizer.model.v3``/``tekken.json``; that tokenizer never
    parses special tokens from text, so ``<s>[INST]`` would reach the model as literal
    characters, and its ``apply_chat_template`` has another signature.

    A model directory that records its dtype (an ORPO+LoRA model merged in fp32,
    ``models.load.recorded_dtype``) runs in that dtype: ``"auto"`` would cast an fp32 checkpoint
    to bf16 and round the LoRA update away; another explicit dtype is refused.
    """
    from prefbias.models.load import recorded_dtype

    need = recorded_dtype(model_dir)
    if need is not None and dtype not in ("auto", need):
        raise GenerationError(f"vllm backend: model {model_dir} must run in {need} "
                              f"(prefbias_model.json), not {dtype}")
    return {"model": str(model_dir), "tensor_parallel_size": int(tensor_parallel_size),
            "gpu_memory_utilization": gpu_memory_utilization, "dtype": need or dtype,
            "tokenizer_mode": "hf", "config_format": "hf"}


class VLLMBackend(BackendBase):
    name = "vllm"

    def __init__(self, model: str, *, model_name: str | None = None, revision: str | None = None,
                 tensor_parallel_size: int | None = None, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, chunk_size: int = 1024, dtype: str = "auto",
                 **_ignored: Any):
        self._vllm = import_vllm()
        self.path = Path(model)
        self.model = model_name or self.path.name
        if not (self.path / "config.json").exists():
            raise GenerationError(f"vllm backend: model directory {self.path} does not exist or "
                                  "has no config.json")
        self.revision = revision or model_revision(self.path)
        tp = tensor_parallel_size or pick_tensor_parallel(visible_gpus(), self.path)
        self.chunk_size = max(1, int(chunk_size))
        kwargs = llm_kwargs(self.path, tensor_parallel_size=tp,
                            gpu_memory_utilization=gpu_memory_utilization, dtype=dtype)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        log.info("vllm: loading %s (tensor_parallel_size=%d)", self.path, tp)
        try:
            self.llm = self._vllm.LLM(**kwargs)
        except Exception as e:  # noqa: BLE001 - re-raised naming the model
            raise GenerationError(f"vllm backend: model {self.model!r} at {self.path} does not "
                                  f"load: {e}") from e
        self.tokenizer = self.llm.get_tokenizer()
        try:
            self.context = int(self.llm.llm_engine.model_config.max_model_len)
        except AttributeError:  # pragma: no cover - older/newer vllm layouts
            self.context = int(max_model_len or 0)

    def encode(self, req: GenRequest) -> list[int]:
        messages, prefill = split_prefill(req.messages)
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not prefill,
            continue_final_message=prefill)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        check_requests(requests)
        params = sampling_params(self._vllm, sampling)
        encoded = []
        for r in requests:
            ids = self.encode(r)
            if self.context and len(ids) + sampling.max_new_tokens > self.context:
                raise ContextOverflowError(
                    f"request {r.id!r}: prompt of {len(ids)} tokens + max_new_tokens "
                    f"{sampling.max_new_tokens} exceeds the context window of {self.context} "
                    f"tokens of model {self.model!r}")
            encoded.append((r, ids))
        for start in range(0, len(encoded), self.chunk_size):
            chunk = encoded[start:start + self.chunk_size]
            outs = self.llm.generate([{"prompt_token_ids": ids} for _, ids in chunk], params,
                                     use_tqdm=False)
            for (req, ids), o in zip(chunk, outs, strict=True):
                c = o.outputs[0]
                finish = "length" if c.finish_reason == "length" else "stop"
                yield GenResult(req.id, c.text, finish, len(ids), len(c.token_ids))
