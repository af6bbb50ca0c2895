"""``openai`` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, ``vllm serve``).

* Bounded concurrency: a thread pool of ``max_concurrency`` workers, so at most that many requests
  are in flight; results are yielded as they complete (written incrementally by the caller).
* Retries: 429, 5xx, timeouts, connection errors and malformed (non-JSON) answers are retried up to
  ``max_retries`` times with exponential backoff and jitter (``backoff_s * 2**attempt``, capped at
  ``max_backoff_s``, times a random factor in [0.5, 1]); other 4xx fail at once. An endpoint that
  stays unreachable fails with an error naming it and the number of attempts.
* The API key is read only from the environment variable named by ``api_key_env`` and is never
  logged or written. Without ``base_url`` (OpenAI itself) the variable must be set; a custom
  endpoint (``vllm serve``) without a key gets the placeholder ``"EMPTY"``.
* ``top_k`` and prefill continuation (``continue_final_message``) are vLLM extensions: they
  are sent (``extra_body``) only to a custom ``base_url``; against OpenAI a non-zero ``top_k`` is
  dropped with a warning and a prefill request is an error.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

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
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, **_ignored: Any):
        import openai

        self._openai = openai
        self.api_model = model
        self.model = model_name or model
        self.revision = revision
        self.base_url = base_url
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        key = os.environ.get(api_key_env)
        if not key:
            if base_url is None:
                raise GenerationError(
                    f"openai backend: environment variable {api_key_env} (generation.openai."
                    "api_key_env) is not set; it must hold the API key")
            key = "EMPTY"
        self.client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0,
                                    timeout=float(timeout_s))
        self._warned_top_k = False
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def _payload(self, req: GenRequest, s: Sampling) -> dict[str, Any]:
        messages, prefill = split_prefill(req.messages)
        kw: dict[str, Any] = {"model": self.api_model, "messages": messages,
                              "temperature": s.temperature, "top_p": s.top_p,
                              "max_tokens": s.max_new_tokens, "seed": s.seed}
        if s.stop:
            kw["stop"] = list(s.stop)
        extra: dict[str, Any] = {}
        if s.top_k:
            if self.base_url is not None:
                extra["top_k"] = s.top_k
            elif not self._warned_top_k:
                self._warned_top_k = True
                log.warning("openai backend: top_k=%d is not supported by the OpenAI API; "
                            "not applied", s.top_k)
        if prefill:
            if self.base_url is None:
                raise GenerationError(f"request {req.id!r}: a final assistant message (prefill) "
                                      "cannot be continued by the OpenAI API; use a vllm endpoint")
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if extra:
            kw["extra_body"] = extra
        return kw

    def _retryable(self, e: Exception) -> bool:
        o = self._openai
        if isinstance(e, (o.APITimeoutError, o.APIConnectionError, o.RateLimitError,
                          o.InternalServerError, ValueError)):  # ValueError: malformed JSON
            return True
        if isinstance(e, o.APIStatusError):
            return e.status_code == 429 or e.status_code >= 500
        return isinstance(e, o.APIResponseValidationError)

    def _describe(self, e: Exception) -> str:
        o = self._openai
        if isinstance(e, o.APIStatusError):
            return f"HTTP {e.status_code} ({type(e).__name__})"
        return type(e).__name__

    def _one(self, req: GenRequest, s: Sampling) -> GenResult:
        kw = self._payload(req, s)
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                r = self.client.chat.completions.create(**kw)
                choice = r.choices[0]
                text = choice.message.content or ""
                # a prefill continued by vllm returns the continuation only
                finish = "length" if choice.finish_reason == "length" else "stop"
                usage = r.usage
                return GenResult(req.id, text, finish,
                                 getattr(usage, "prompt_tokens", None),
                                 getattr(usage, "completion_tokens", None))
            except Exception as e:  # noqa: BLE001 - classified below
                if isinstance(e, self._openai.AuthenticationError):
                    raise GenerationError(f"openai backend: {self.endpoint} rejected the API key "
                                          "(HTTP 401)") from None
                if not self._retryable(e):
                    raise GenerationError(f"openai backend: request {req.id!r} to {self.endpoint} "
                                          f"failed: {self._describe(e)}: {_safe(e)}") from None
                last = e
                if attempt == self.max_retries:
                    break
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
                delay *= random.uniform(0.5, 1.0)
                log.warning("openai backend: request %r: %s; retry %d/%d in %.2fs", req.id,
                            self._describe(e), attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        assert last is not None
        if isinstance(last, self._openai.APIConnectionError) and \
                not isinstance(last, self._openai.APITimeoutError):
            raise GenerationError(f"openai backend: cannot reach endpoint {self.endpoint} after "
                                  f"{self.max_retries + 1} attempts ({self._describe(last)})")
        raise GenerationError(f"openai backend: request {req.id!r} to {self.endpoint} failed "
                              f"after {self.max_retries + 1} attempts: {self._describe(last)}")

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        check_requests(requests)
        for r in requests:  # fail before any request for prefills OpenAI cannot do
            self._payload(r, sampling)
        pending = iter(requests)
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            running: set[Future] = set()
            # submit lazily so a permanent failure stops the rest without sending them
            for r in pending:
                running.add(pool.submit(self._one, r, sampling))
                if len(running) >= self.max_concurrency:
                    break
            try:
                while running:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        if f.exception() is not None:
                            error = error or f.exception()
                            continue
                        # results of requests already sent are still handed out (and so
                        # recorded in the partial file) after another request failed
                        yield f.result()
                        if error is None:
                            nxt = next(pending, None)
                            if nxt is not None:
                                running.add(pool.submit(self._one, nxt, sampling))
            finally:
                for f in running:
                    f.cancel()
        if error is not None:
            raise error


def _safe(e: Exception) -> str:
    """An exception message without anything that looks like a bearer key."""
    import re

    return re.sub(r"(sk-|Bearer\s+)[A-Za-z0-9_\-]+", r"\1***", str(e))[:300]
