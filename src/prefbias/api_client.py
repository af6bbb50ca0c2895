"""The one client for OpenAI-compatible chat-completion APIs (OpenAI, ``vllm serve``, NVIDIA's
reward endpoint), shared by generation (:mod:`prefbias.generation.openai_backend`), the LLM judge
(:mod:`prefbias.evaluation.judge`), the sycophancy LLM grader
(:mod:`prefbias.evaluation.grading`) and the API reward model (:mod:`prefbias.evaluation.reward`).

What it owns, once:

* **Secrets.** The key is read only from the environment variable a config section names
  (``api_key_env``), when the client is built — so a missing key fails before any request or
  model load — and it is never logged, written, or part of a cache key: every error text that
  leaves this module is scrubbed (the key itself, ``sk-…`` and ``Bearer …`` tokens), and every
  answer is scrubbed of every secret value the process holds (:mod:`prefbias.held_secrets`)
  before it is cached or returned, so a server that echoes the key back stores nothing secret.
  A custom endpoint (``base_url``) may be keyless where the caller allows it (``vllm serve``).
* **Retries.** 408/409/425/429 and 5xx answers, timeouts, connection errors and malformed bodies
  are retried up to ``max_retries`` times (so at most ``max_retries + 1`` attempts); other 4xx
  fail at once (401 as :class:`ApiAuthError`). Backoff is exponential with jitter:
  ``min(max_backoff_s, retry_backoff_s * 2**attempt) * U(0.5, 1)``.
* **Retry-After.** A server's ``Retry-After`` / ``retry-after-ms`` is honoured up to
  ``max_retry_after_s``. A longer request (``Retry-After: 3600``) is not obeyed: the worker waits
  the cap at most and the attempt counts as a failed one, so a server that keeps asking for an
  hour ends in an :class:`ApiError` after ``max_retries + 1`` attempts instead of parking a worker.
* **Concurrency.** :func:`run_parallel` / :func:`iter_parallel` run at most ``max_concurrency``
  requests at once; the first failure stops new work (in-flight requests finish and are cached),
  and an optional requests-per-minute limiter spaces requests.
* **Cache.** With a ``cache_dir`` every answer is stored under the hash of everything that
  determines it (:mod:`prefbias.cache`), so a rerun makes no requests. Generation uses
  no cache (it resumes from its partial file instead).
* **Cost log.** Requests, retries, tokens, cache hits and the estimated cost
  (``price_per_1m_tokens``) are counted and logged once per job by :meth:`ApiClient.log_usage`.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from prefbias import held_secrets
from prefbias.cache import DiskCache, cache_key

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class ApiKeyError(RuntimeError):
    """The configured API needs a key and the named environment variable is not set."""


class ApiError(RuntimeError):
    """Requests kept failing after the configured retries (or failed permanently).

    ``attempts`` is the number of attempts made, ``last`` the (scrubbed) last error, ``kind`` one
    of ``permanent`` (a non-retryable answer), ``exhausted`` (retries used up), ``unreachable``
    (retries used up on connection errors) or ``aborted`` (another request failed first).
    """

    def __init__(self, message: str, *, attempts: int = 0, last: str = "",
                 kind: str = "exhausted"):
        super().__init__(message)
        self.attempts = attempts
        self.last = last
        self.kind = kind


class ApiAuthError(ApiError):
    """The endpoint rejected the API key (HTTP 401)."""


@dataclass
class ApiSettings:
    """Everything that configures the client; read from a config section by :meth:`from_spec`.

    ``section`` is the config section's dotted name (``judge``, ``sycophancy.grader``,
    ``generation.openai``), used in error messages.
    """

    model: str
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    max_retries: int = 6
    timeout_s: float = 120.0
    max_concurrency: int = 8
    requests_per_minute: float | None = None
    retry_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 60.0
    price_per_1m_tokens: dict[str, float] = field(default_factory=dict)
    section: str = "api"

    @classmethod
    def from_spec(cls, spec: dict[str, Any], *, section: str, **overrides: Any) -> ApiSettings:
        """Settings from a config section (unknown keys of the section are other settings of
        the caller and ignored here)."""
        names = {f.name for f in fields(cls)}
        nullable = {"base_url", "api_key_env", "requests_per_minute"}  # null is meaningful
        values = {k: v for k, v in spec.items()
                  if k in names and (v is not None or k in nullable)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "model" not in values:
            raise ValueError(f"{section}: no model configured for the API client")
        s = cls(**{**values, "section": section})
        s.max_retries = max(0, int(s.max_retries))
        s.max_concurrency = max(1, int(s.max_concurrency))
        s.timeout_s = float(s.timeout_s)
        s.retry_backoff_s = float(s.retry_backoff_s)
        s.max_backoff_s = float(s.max_backoff_s)
        s.max_retry_after_s = float(s.max_retry_after_s)
        s.price_per_1m_tokens = dict(s.price_per_1m_tokens or {})
        return s

    @property
    def endpoint(self) -> str:
        return self.base_url or OPENAI_URL


def resolve_api_key(env_name: str | None, *, purpose: str = "judge",
                    config_key: str | None = None) -> str:
    where = f" ({config_key})" if config_key else ""
    if not env_name:
        raise ApiKeyError(f"{purpose}: no api_key_env{where} configured for an API backend")
    value = os.environ.get(env_name)
    if not value:
        raise ApiKeyError(
            f"{purpose}: the API key environment variable {env_name}{where} is not set (or "
            f"empty); export {env_name}=... before running, or use a local backend")
    held_secrets.register(env_name, value)
    return value


_SECRETISH = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9_\-]+")


def scrub(text: str, key: str | None = None) -> str:
    """``text`` without the key and without anything that looks like a bearer token."""
    if key and key != "EMPTY":
        text = text.replace(key, "***")
    return _SECRETISH.sub(r"\1***", held_secrets.scrub_text(text))


def retry_after_s(response: Any) -> float | None:
    """Seconds a server asked to wait (``retry-after-ms``, ``Retry-After`` in seconds or as an
    HTTP date); None when absent or unreadable."""
    try:
        headers = response.headers
    except AttributeError:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


class RateLimiter:
    def __init__(self, requests_per_minute: float | None):
        self.interval = 60.0 / float(requests_per_minute) if requests_per_minute else 0.0
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class ApiClient:
    """Cached, rate-limited, retrying OpenAI-compatible chat client (see the module docstring).

    :meth:`complete` returns ``{"text", "finish_reason", "prompt_tokens", "completion_tokens",
    "logprobs", "cached"}``; ``logprobs`` is a list of ``{"token", "top": {token: logprob}}`` when
    requested. Neither cache entries nor answers ever hold a secret value (scrubbed).
    """

    def __init__(self, settings: ApiSettings, *, cache_dir: str | Path | None = None,
                 purpose: str = "api", keyless_custom_endpoint: bool = False):
        self.settings = settings
        self.model = settings.model
        self.base_url = settings.base_url
        self.purpose = purpose
        self.max_retries = settings.max_retries
        self.max_concurrency = settings.max_concurrency
        self.cache = DiskCache(cache_dir)
        self._limiter = RateLimiter(settings.requests_per_minute)
        self._lock = threading.Lock()
        self.usage = {"requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0,
                      "retry_after_capped": 0}
        config_key = f"{settings.section}.api_key_env"
        if keyless_custom_endpoint and settings.base_url is not None \
                and not os.environ.get(settings.api_key_env or ""):
            self._key = "EMPTY"  # vllm serve without --api-key accepts any
        else:
            # fails here, before any request, when the key is missing
            self._key = resolve_api_key(settings.api_key_env, purpose=purpose,
                                        config_key=config_key)
        import openai

        self._openai = openai
        self._client = openai.OpenAI(api_key=self._key, base_url=settings.base_url,
                                     timeout=settings.timeout_s, max_retries=0)

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    def _scrub(self, text: str) -> str:
        return scrub(text, self._key)

    def _request_once(self, kwargs: dict[str, Any]):
        return self._client.chat.completions.create(**kwargs)

    # -- one request, with retries ---------------------------------------------------------
    def complete(self, messages: Sequence[dict[str, str]], *, temperature: float = 0.0,
                 max_tokens: int = 512, logprobs: bool = False, top_logprobs: int | None = None,
                 stop: Sequence[str] | None = None, top_p: float | None = None,
                 seed: int | None = None, extra_body: dict[str, Any] | None = None,
                 abort: threading.Event | None = None, variant: int = 0,
                 request_id: str | None = None) -> dict[str, Any]:
        """``variant`` distinguishes deliberate repeats of one request (parse re-asks) in the
        cache, so a repeat is really sent once and replayed from the cache on reruns.
        ``request_id`` only names the request in log lines and errors."""
        options: dict[str, Any] = {
            "temperature": temperature, "max_tokens": max_tokens, "logprobs": logprobs,
            "top_logprobs": top_logprobs if logprobs else None,
            "stop": list(stop) if stop else None}
        # options that older cache entries never had stay out of the key when unset, so the
        # existing judge/grader caches remain valid
        for k, v in (("top_p", top_p), ("seed", seed), ("extra_body", extra_body)):
            if v is not None:
                options[k] = v
        key = cache_key("chat", self.model, list(messages), options, variant)
        if self.cache.root is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return {**hit, "cached": True}
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages),
                                  "temperature": temperature, "max_tokens": max_tokens}
        if top_p is not None:
            kwargs["top_p"] = top_p
        if seed is not None:
            kwargs["seed"] = seed
        if logprobs:
            kwargs["logprobs"] = True
            if top_logprobs:
                kwargs["top_logprobs"] = int(top_logprobs)
        if stop:
            kwargs["stop"] = list(stop)
        if extra_body:
            kwargs["extra_body"] = dict(extra_body)
        # a server may echo the key back: nothing secret is cached or handed on
        out = held_secrets.scrub_obj(self._with_retries(kwargs, abort, request_id))
        with self._lock:
            self.usage["prompt_tokens"] += out["prompt_tokens"]
            self.usage["completion_tokens"] += out["completion_tokens"]
        self.cache.put(key, out)
        return {**out, "cached": False}

    def _who(self, request_id: str | None) -> str:
        return f"request {request_id!r} to {self.endpoint}" if request_id is not None \
            else f"request to model {self.model} at {self.endpoint}"

    def _with_retries(self, kwargs: dict[str, Any], abort: threading.Event | None,
                      request_id: str | None) -> dict[str, Any]:
        o = self._openai
        last = ""
        only_connection_errors = True
        for attempt in range(self.max_retries + 1):
            if abort is not None and abort.is_set():
                raise ApiError(f"{self.purpose}: aborted after another request failed",
                               attempts=attempt, last=last, kind="aborted")
            self._limiter.wait()
            with self._lock:
                self.usage["requests"] += 1
                if attempt:
                    self.usage["retries"] += 1
            retry_after: float | None = None
            try:
                return self._convert(self._request_once(kwargs))
            except o.APIStatusError as e:
                only_connection_errors = False
                status = getattr(e, "status_code", None)
                last = f"HTTP {status} ({type(e).__name__}): {self._scrub(str(e))[:300]}"
                if status == 401:
                    raise ApiAuthError(f"{self.purpose}: {self.endpoint} rejected the API key "
                                       f"(HTTP 401)", attempts=attempt + 1, last=last,
                                       kind="permanent") from None
                if not (status in RETRYABLE_STATUS or (status or 0) >= 500):
                    raise ApiError(f"{self.purpose}: {self._who(request_id)} failed "
                                   f"permanently ({last})", attempts=attempt + 1, last=last,
                                   kind="permanent") from None
                retry_after = retry_after_s(getattr(e, "response", None))
            except o.APITimeoutError as e:  # a subclass of APIConnectionError
                only_connection_errors = False
                last = f"{type(e).__name__}: {self._scrub(str(e))[:300]}"
            except o.APIConnectionError as e:
                last = f"{type(e).__name__}: {self._scrub(str(e))[:300]}"
            except (o.APIResponseValidationError, ValueError, KeyError, TypeError,
                    AttributeError, IndexError) as e:
                only_connection_errors = False
                last = f"malformed response ({type(e).__name__}: {self._scrub(str(e))[:200]})"
            if attempt == self.max_retries:
                break
            delay = self.backoff_delay(attempt, retry_after)
            log.warning("%s: %s: attempt %d/%d failed (%s); retry in %.2fs", self.purpose,
                        self._who(request_id), attempt + 1, self.max_retries + 1, last, delay)
            time.sleep(delay)
        n = self.max_retries + 1
        if only_connection_errors:
            raise ApiError(f"{self.purpose}: cannot reach endpoint {self.endpoint} after {n} "
                           f"attempts; last error: {last}", attempts=n, last=last,
                           kind="unreachable")
        kept = (f" Answers already received are kept in the cache ({self.cache.root})."
                if self.cache.root is not None else "")
        raise ApiError(f"{self.purpose}: giving up on model {self.model} ({self._who(request_id)})"
                       f" after {n} attempts; last error: {last}.{kept}", attempts=n, last=last,
                       kind="exhausted")

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: exponential backoff with jitter, or
        the server's Retry-After when it is longer — but never more than
        ``max_retry_after_s`` (a longer Retry-After is logged and the attempt stays a failure)."""
        s = self.settings
        delay = min(s.max_backoff_s, s.retry_backoff_s * (2 ** attempt))
        delay *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            if retry_after > s.max_retry_after_s:
                with self._lock:
                    self.usage["retry_after_capped"] += 1
                log.warning("%s: the server asked to wait %.0fs (Retry-After), more than "
                            "%s.max_retry_after_s = %gs; waiting %gs at most and counting the "
                            "attempt as failed", self.purpose, retry_after, s.section,
                            s.max_retry_after_s, s.max_retry_after_s)
                delay = max(delay, s.max_retry_after_s)
            else:
                delay = max(delay, retry_after)
        return min(delay, max(s.max_backoff_s, s.max_retry_after_s))

    @staticmethod
    def _convert(resp: Any) -> dict[str, Any]:
        if isinstance(resp, str):  # some servers make the SDK return raw text on bad JSON
            raise ValueError("response body is not a JSON object")
        choice = resp.choices[0]
        text = choice.message.content
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TypeError("message content is not a string")
        lp = None
        if getattr(choice, "logprobs", None) is not None and choice.logprobs.content:
            lp = [{"token": t.token,
                   "top": {a.token: a.logprob for a in (t.top_logprobs or [])} or
                   {t.token: t.logprob}}
                  for t in choice.logprobs.content]
        usage = getattr(resp, "usage", None)
        return {"text": text, "finish_reason": choice.finish_reason,
                "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
                "logprobs": lp}

    # -- cost log --------------------------------------------------------------------------
    def cost_usd(self) -> float:
        price = self.settings.price_per_1m_tokens
        return (self.usage["prompt_tokens"] * float(price.get("input", 0.0))
                + self.usage["completion_tokens"] * float(price.get("output", 0.0))) / 1e6

    def log_usage(self) -> dict[str, Any]:
        info = {**self.usage, "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "estimated_cost_usd": round(self.cost_usd(), 6), "model": self.model}
        log.info("%s usage: %d requests (%d retries), %d prompt + %d completion tokens, "
                 "%d cache hits, estimated cost $%.4f", self.purpose, info["requests"],
                 info["retries"], info["prompt_tokens"], info["completion_tokens"],
                 info["cache_hits"], info["estimated_cost_usd"])
        return info


def make_client(spec: dict[str, Any], cache_dir: str | Path | None = None, *,
                purpose: str = "judge", section: str | None = None,
                keyless_custom_endpoint: bool = False, **overrides: Any) -> ApiClient:
    """An :class:`ApiClient` from a config section (``judge``, ``sycophancy.grader``,
    ``reward_winrate`` with ``model`` overridden, ``generation.openai``)."""
    settings = ApiSettings.from_spec(spec, section=section or purpose.replace(" ", "_"),
                                     **overrides)
    return ApiClient(settings, cache_dir=cache_dir, purpose=purpose,
                     keyless_custom_endpoint=keyless_custom_endpoint)


# ---------------------------------------------------------------------------------------------
# bounded concurrency
# ---------------------------------------------------------------------------------------------
def iter_parallel(items: Sequence[Any], fn: Callable[[Any, threading.Event], Any],
                  max_workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(item, abort))`` as results complete, with at most ``max_workers``
    calls in flight. Work is submitted lazily, so the first exception stops new work (``abort``
    is set for calls still retrying); results of calls already running are still yielded; then
    the first exception is re-raised."""
    abort = threading.Event()
    error: BaseException | None = None
    pending = iter(range(len(items)))
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        running: dict[Future, int] = {}

        def submit_next() -> bool:
            i = next(pending, None)
            if i is None:
                return False
            running[pool.submit(fn, items[i], abort)] = i
            return True

        while len(running) < max(1, max_workers) and submit_next():
            pass
        try:
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    i = running.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        if error is None and not (isinstance(exc, ApiError)
                                                  and exc.kind == "aborted"):
                            error = exc
                        abort.set()
                        continue
                    yield i, f.result()
                    if error is None:
                        submit_next()
        finally:
            abort.set()
            for f in running:
                f.cancel()
    if error is not None:
        raise error


def run_parallel(items: Sequence[Any], fn: Callable[[Any, threading.Event], Any],
                 max_workers: int) -> list[Any]:
    """Map ``fn`` over ``items`` with bounded concurrency, results in item order; the first
    exception stops new work, in-flight requests finish (and are cached), then it is raised."""
    results: list[Any] = [None] * len(items)
    for i, r in iter_parallel(items, fn, max_workers):
        results[i] = r
    return results
