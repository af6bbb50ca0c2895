"""A real local HTTP server speaking the OpenAI chat-completions API, for tests.

It listens on ``127.0.0.1`` on a random free port in a background thread, so the real ``openai``
client (or any HTTP client) talks to it over TCP exactly as to OpenAI or ``vllm serve``.

API::

    # in a test module under tests/ (pytest puts tests/ on sys.path: tests/ has no __init__.py)
    from support.openai_server import OpenAIStubServer, Fault, token_logprobs

    def handler(body: dict) -> str | dict:
        # body = the parsed JSON request ({"model", "messages", "temperature", ...})
        return "the answer"                       # -> choices[0].message.content
        # or a dict with any of: content, finish_reason ("stop"|"length"), logprobs
        # (the OpenAI ``choices[i].logprobs`` object, see token_logprobs), usage
        # ({"prompt_tokens", "completion_tokens"}), status (an HTTP status to answer with)

    with OpenAIStubServer(handler=handler,
                          faults=["429", "500", Fault("timeout", sleep_s=3), "malformed"],
                          api_key="sk-test", latency_s=0.0) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test")
        ...
        srv.requests        # list[RecordedRequest] of every request that reached the server
                            # (.path, .headers (case-insensitive), .body, .fault, .status)
        srv.n_requests      # len(srv.requests) (chat-completions requests only)
        srv.bodies          # the parsed JSON bodies of the chat-completions requests, in order
        srv.max_in_flight   # the largest number of requests being served at the same time

``srv.base_url`` is ``http://127.0.0.1:<port>/v1`` (what ``openai.OpenAI(base_url=...)`` wants).

Faults
    ``faults`` is a list consumed front to back: each chat-completions request takes the first
    pending fault whose ``match`` accepts its body (a fault without ``match`` accepts any), and is
    answered with that fault instead of the handler. Items are :class:`Fault` or shorthand strings:

    * ``"429"`` / ``"500"`` / ``"503"`` (any status) -> that HTTP status with an OpenAI error body
      (``429`` carries ``retry-after-ms: 10`` so clients retry quickly, unless the Fault's
      ``headers`` replace it, e.g. ``Fault("429", headers={"Retry-After": "3600"})``);
    * ``"timeout"`` -> sleep ``sleep_s`` (default 2 s) before answering normally — longer than the
      client's timeout, so the client sees a timeout;
    * ``"malformed"`` -> HTTP 200 with a body that is not JSON;
    * ``"drop"`` -> close the connection without answering.

    ``srv.add_faults(...)`` appends more while running; ``srv.pending_faults`` counts those left.
    A ``fault_fn(n, body) -> Fault | str | None`` argument is consulted for every request
    (``n`` = 0-based request index) before the list, for patterns like "every 3rd request fails".

Auth
    With ``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get 401.

Echoing the key
    With ``echo_key=True`` every ``{api_key}`` (:data:`KEY_PLACEHOLDER`) in the handler's answer
    (content and logprobs) is replaced by the key of the request's ``Authorization: Bearer``
    header, as a misconfigured server or proxy might send it back in a successful answer.

Default handler
    Without a handler the server echoes the last message's content as ``"echo: <content>"``.
    ``logprobs=True`` in the request makes the default handler add per-token logprobs
    (whitespace tokens, each logprob -0.5, ``top_logprobs`` alternatives when asked).

Other endpoints: ``GET /v1/models`` lists ``models`` (default ``["stub-model"]``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["KEY_PLACEHOLDER", "Fault", "Headers", "OpenAIStubServer", "RecordedRequest",
           "token_logprobs"]

KEY_PLACEHOLDER = "{api_key}"


@dataclass
class Fault:
    """One injected failure. kind: an HTTP status as text ("429", "500"), "timeout",
    "malformed" or "drop". ``match(body) -> bool`` restricts it to some requests."""

    kind: str
    sleep_s: float = 2.0
    match: Callable[[dict], bool] | None = None
    headers: dict[str, str] | None = None  # extra response headers (status faults)

    @classmethod
    def coerce(cls, f: Fault | str | int) -> Fault:
        return f if isinstance(f, Fault) else cls(str(f))


class Headers(dict):
    """Request headers: lower-case names, case-insensitive lookup (``h["Authorization"]``)."""

    def __init__(self, items=()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    t_start: float
    fault: str | None = None
    status: int | None = None
    t_end: float | None = None


def token_logprobs(tokens: list[tuple[str, float]] | list[tuple[str, float, dict[str, float]]]
                   ) -> dict:
    """Build an OpenAI ``choices[i].logprobs`` object from ``(token, logprob[, {alt: lp}])``."""
    content = []
    for item in tokens:
        tok, lp = item[0], item[1]
        alts = item[2] if len(item) > 2 else {}
        content.append({"token": tok, "logprob": lp, "bytes": list(tok.encode()),
                        "top_logprobs": [{"token": a, "logprob": v, "bytes": list(a.encode())}
                                         for a, v in alts.items()]})
    return {"content": content}


def _default_handler(body: dict) -> dict:
    msgs = body.get("messages") or [{}]
    content = msgs[-1].get("content", "")
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    text = f"echo: {content}"
    out: dict[str, Any] = {"content": text}
    if body.get("logprobs"):
        k = int(body.get("top_logprobs") or 0)
        toks = text.split(" ")
        out["logprobs"] = token_logprobs(
            [(t, -0.5, {f"alt{j}": -1.0 - j for j in range(k)}) for t in toks])
    return out


class OpenAIStubServer:
    """See the module docstring. Use as a context manager (or call start()/stop())."""

    def __init__(self, handler: Callable[[dict], str | dict] | None = None, *,
                 faults: list[Fault | str | int] | None = None,
                 fault_fn: Callable[[int, dict], Fault | str | None] | None = None,
                 api_key: str | None = None, latency_s: float = 0.0,
                 models: list[str] | None = None, echo_key: bool = False):
        self.handler = handler or _default_handler
        self._faults: list[Fault] = [Fault.coerce(f) for f in (faults or [])]
        self.fault_fn = fault_fn
        self.api_key = api_key
        self.echo_key = echo_key
        self.latency_s = latency_s
        self.models = models or ["stub-model"]
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def n_requests(self) -> int:
        return len(self.chat_requests)

    @property
    def bodies(self) -> list[dict]:
        return [r.body for r in self.chat_requests]

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def add_faults(self, *faults: Fault | str | int) -> None:
        with self._lock:
            self._faults.extend(Fault.coerce(f) for f in faults)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def start(self) -> OpenAIStubServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                        for m in server.models]})
                else:
                    self._send(404, _error("not found", "invalid_request_error"))

            def do_POST(self):  # noqa: N802
                server._serve_post(self)

            def _send(self, status: int, obj: Any, raw: bytes | None = None,
                      headers: dict[str, str] | None = None):
                data = raw if raw is not None else json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    pass

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that timed out
                import sys

                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="openai-stub",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAIStubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------
    def _take_fault(self, n: int, body: dict) -> Fault | None:
        if self.fault_fn is not None:
            f = self.fault_fn(n, body)
            if f is not None:
                return Fault.coerce(f)
        with self._lock:
            for i, f in enumerate(self._faults):
                if f.match is None or f.match(body):
                    return self._faults.pop(i)
        return None

    def _serve_post(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        rec = RecordedRequest("POST", h.path, Headers(h.headers.items()), body, time.monotonic())
        with self._lock:
            self.requests.append(rec)
            n = sum(1 for r in self.requests if r.path.rstrip("/").endswith("/chat/completions"))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status = self._answer(h, rec, body, n - 1)
            rec.status = status
        finally:
            rec.t_end = time.monotonic()
            with self._lock:
                self.in_flight -= 1

    def _answer(self, h, rec: RecordedRequest, body: Any, n: int) -> int:
        if not h.path.rstrip("/").endswith("/chat/completions"):
            h._send(404, _error(f"unknown path {h.path}", "invalid_request_error"))
            return 404
        if self.api_key is not None and \
                h.headers.get("Authorization") != f"Bearer {self.api_key}":
            h._send(401, _error("Incorrect API key provided.", "invalid_request_error",
                                code="invalid_api_key"))
            return 401
        if not isinstance(body, dict):
            h._send(400, _error("request body is not a JSON object", "invalid_request_error"))
            return 400
        if self.latency_s:
            time.sleep(self.latency_s)
        fault = self._take_fault(n, body)
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind.isdigit():
                status = int(fault.kind)
                headers = {"retry-after-ms": "10"} if status == 429 else None
                if fault.headers is not None:
                    headers = dict(fault.headers)
                kind = "rate_limit_exceeded" if status == 429 else "server_error"
                h._send(status, _error(f"injected {status}", kind), headers=headers)
                return status
            if fault.kind == "malformed":
                h._send(200, None, raw=b'{"id": "chatcmpl-broken", "choices": [')
                return 200
            if fault.kind == "drop":
                h.close_connection = True
                try:
                    h.connection.shutdown(2)
                except OSError:
                    pass
                return 0
            if fault.kind == "timeout":
                time.sleep(fault.sleep_s)
            else:
                raise ValueError(f"unknown fault kind {fault.kind!r}")
        n_choices = int(body.get("n") or 1)
        choices = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        for i in range(n_choices):
            out = self.handler(body)
            if isinstance(out, str):
                out = {"content": out}
            if self.echo_key:
                auth = h.headers.get("Authorization") or ""
                key = auth[len("Bearer "):] if auth.startswith("Bearer ") else auth
                out = json.loads(json.dumps(out).replace(KEY_PLACEHOLDER, key))
            if "status" in out:
                h._send(int(out["status"]), _error(out.get("content", "handler error"),
                                                   "server_error"))
                return int(out["status"])
            content = out.get("content", "")
            prompt_tokens = sum(len(str(m.get("content", "")).split())
                                for m in body.get("messages", []) if isinstance(m, dict))
            u = out.get("usage") or {"prompt_tokens": prompt_tokens,
                                     "completion_tokens": len(content.split())}
            usage["prompt_tokens"] = u["prompt_tokens"]
            usage["completion_tokens"] += u["completion_tokens"]
            choices.append({"index": i, "finish_reason": out.get("finish_reason", "stop"),
                            "message": {"role": "assistant", "content": content},
                            "logprobs": out.get("logprobs")})
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        h._send(200, {"id": f"chatcmpl-stub-{n}", "object": "chat.completion",
                      "created": int(time.time()), "model": body.get("model", "stub-model"),
                      "choices": choices, "usage": usage})
        return 200


def _error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
