"""The one place that knows every generation backend: ``make_backend(kind, model, **opts)``.

The backends (:mod:`.hf_backend`, :mod:`.vllm_backend`, :mod:`.openai_backend`) import the
shared interface of :mod:`.base`; only this module imports them (deferred: a backend's heavy
libraries load when it is asked for), so no backend imports its own factory.
"""

from __future__ import annotations

from typing import Any

from prefbias.generation.base import BACKENDS, Backend, GenerationError


def make_backend(kind: str, model: str, **opts: Any) -> Backend:
    """Build a backend. ``model`` is a model directory (hf, vllm) or an API model name (openai).

    Options: ``model_name`` (id recorded in outputs; default the directory's name), ``revision``;
    hf: ``batch_size``, ``device``, ``dtype``; vllm: ``tensor_parallel_size``, ``max_model_len``,
    ``gpu_memory_utilization``, ``chunk_size``; openai: ``base_url``, ``api_key_env``,
    ``max_concurrency``, ``max_retries``, ``timeout_s``, ``backoff_s``, ``max_backoff_s``.
    """
    if kind == "hf":
        from prefbias.generation.hf_backend import HFBackend

        return HFBackend(model, **opts)
    if kind == "vllm":
        from prefbias.generation.vllm_backend import open_backend

        return open_backend(model, **opts)
    if kind == "openai":
        from prefbias.generation.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **opts)
    raise GenerationError(f"unknown generation backend {kind!r} (expected one of {BACKENDS})")
