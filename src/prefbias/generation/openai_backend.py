"""``openai`` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, ``vllm serve``).

Requests go through the shared client (:mod:`prefbias.api_client`): bounded concurrency
(``max_concurrency`` requests in flight, results yielded as they complete and written
incrementally by the caller), retries of 429/5xx/timeouts/connection errors/malformed answers with
exponential backoff and jitter (``backoff_s * 2**attempt`` capped at ``max_backoff_s``; a server's
Retry-After honoured up to ``max_retry_after_s``), other 4xx failing at once, and the API key read
only from the environment variable ``api_key_env`` (never logged or written). Without ``base_url``
(OpenAI itself) the variable must be set; a custom endpoint (``vllm serve``) without a key gets the
placeholder ``"EMPTY"``. Generation keeps no answer cache: a killed run resumes from its partial
file (:func:`prefbias.generation.base.run_resumable`).

``top_k`` and prefill continuation (``continue_final_message``) are vLLM extensions: they are sent
(``extra_body``) only to a custom ``base_url``; against OpenAI a non-zero ``top_k`` is dropped with
a warning and a prefill request is an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prefbias.api_client import (
    ApiAuthError,
    ApiClient,
    ApiError,
    ApiKeyError,
    ApiSettings,
    iter_parallel,
)
from prefbias.generation.base import (
    BackendBase,
    GenerationError,
    GenRequest,
    GenResult,
    Sampling,
    check_requests,
    split_prefill,
)

log = logging.getLogger(__name__)


class OpenAIBackend(BackendBase):
    name = "openai"

    def __init__(self, model: str, *, model_name: str | None = None, revision: str | None = None,
                 base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, max_retries: int = 6, timeout_s: float = 120.0,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 max_retry_after_s: float = 60.0, requests_per_minute: float | None = None,
                 price_per_1m_tokens: dict[str, float] | None = None, **_ignored: Any):
        self.api_model = model
        self.model = model_name or model
        self.revision = revision
        self.base_url = base_url
        settings = ApiSettings(model=model, base_url=base_url, api_key_env=api_key_env,
                               max_retries=max(0, int(max_retries)), timeout_s=float(timeout_s),
                               max_concurrency=max(1, int(max_concurrency)),
                               requests_per_minute=requests_per_minute,
                               retry_backoff_s=float(backoff_s),
                               max_backoff_s=float(max_backoff_s),
                               max_retry_after_s=float(max_retry_after_s),
                               price_per_1m_tokens=dict(price_per_1m_tokens or {}),
                               section="generation.openai")
        try:
            self.client = ApiClient(settings, purpose="openai backend",
                                    keyless_custom_endpoint=True)
        except ApiKeyError as e:
            raise GenerationError(f"{e}; it must hold the API key") from None
        self.max_concurrency = settings.max_concurrency
        self.max_retries = settings.max_retries
        self._warned_top_k = False
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.client.endpoint

    def _payload(self, req: GenRequest, s: Sampling) -> dict[str, Any]:
        messages, prefill = split_prefill(req.messages)
        kw: dict[str, Any] = {"messages": messages, "temperature": s.temperature,
                              "top_p": s.top_p, "max_tokens": s.max_new_tokens, "seed": s.seed,
                              "stop": list(s.stop) if s.stop else None}
        extra: dict[str, Any] = {}
        if s.top_k:
            if self.base_url is not None:
                extra["top_k"] = s.top_k
            else:
                with self._lock:
                    warn, self._warned_top_k = not self._warned_top_k, True
                if warn:
                    log.warning("openai backend: top_k=%d is not supported by the OpenAI API; "
                                "not applied", s.top_k)
        if prefill:
            if self.base_url is None:
                raise GenerationError(f"request {req.id!r}: a final assistant message (prefill) "
                                      "cannot be continued by the OpenAI API; use a vllm endpoint")
            extra.update(continue_final_message=True, add_generation_prompt=False)
        kw["extra_body"] = extra or None
        return kw

    def _one(self, req: GenRequest, s: Sampling, abort: threading.Event | None = None
             ) -> GenResult:
        try:
            ans = self.client.complete(**self._payload(req, s), abort=abort, request_id=req.id)
        except ApiAuthError:
            raise GenerationError(f"openai backend: {self.endpoint} rejected the API key "
                                  "(HTTP 401)") from None
        except ApiError as e:
            if e.kind == "aborted":
                raise
            if e.kind == "unreachable":
                raise GenerationError(f"openai backend: cannot reach endpoint {self.endpoint} "
                                      f"after {e.attempts} attempts ({e.last})") from None
            if e.kind == "permanent":
                raise GenerationError(f"openai backend: request {req.id!r} to {self.endpoint} "
                                      f"failed: {e.last}") from None
            raise GenerationError(f"openai backend: request {req.id!r} to {self.endpoint} failed "
                                  f"after {e.attempts} attempts: {e.last}") from None
        # a prefill continued by vllm returns the continuation only
        finish = "length" if ans["finish_reason"] == "length" else "stop"
        return GenResult(req.id, ans["text"], finish, ans["prompt_tokens"],
                         ans["completion_tokens"])

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        check_requests(requests)
        for r in requests:  # fail before any request for prefills OpenAI cannot do
            self._payload(r, sampling)
        # lazy submission: a permanent failure stops the rest without sending them; results of
        # requests already sent are still handed out (and so recorded in the partial file)
        try:
            for _, result in iter_parallel(requests,
                                           lambda r, abort: self._one(r, sampling, abort),
                                           self.max_concurrency):
                yield result
        finally:
            self.client.log_usage()
