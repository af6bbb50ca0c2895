"""The generation interface shared by every backend (``docs/ARCHITECTURE.md``).

:func:`prefbias.generation.factory.make_backend` (``make_backend(kind, model, **opts)``; the
backends import this module, never the factory) returns an object with ``.name`` (the backend
kind), ``.model`` (the model id recorded in outputs), ``.revision`` and
``.generate(requests, sampling) -> list[GenResult]`` (results in request order) plus
``.generate_iter(requests, sampling)`` yielding results as they complete (used for incremental,
resumable writing by :func:`run_resumable`).

* ``GenRequest(id, messages)``: a chat; a final ``assistant`` message is a *prefill* that the
  model continues (the returned text is the continuation only).
* ``Sampling(temperature, top_p, top_k, max_new_tokens, seed, stop)``: ``temperature == 0`` means
  greedy; ``top_k == 0`` means no top-k cut.
* ``GenResult(id, text, finish_reason, prompt_tokens, completion_tokens)``: ``finish_reason`` is
  ``"stop"`` (EOS or a stop string) or ``"length"`` (``max_new_tokens`` reached).

Backends: ``hf`` (:mod:`.hf_backend`), ``vllm`` (:mod:`.vllm_backend`), ``openai``
(:mod:`.openai_backend`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prefbias.io import DataError, atomic_open, sha256_text

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm", "openai")


class GenerationError(RuntimeError):
    """A generation failure whose message names the cause (backend, model, request)."""


class ContextOverflowError(GenerationError):
    """A prompt (plus ``max_new_tokens``) does not fit the model's context window."""


@dataclass(frozen=True)
class GenRequest:
    id: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sampling:
        known = {k: d[k] for k in ("temperature", "top_p", "top_k", "max_new_tokens", "seed")
                 if k in d and d[k] is not None}
        unknown = set(d) - set(known) - {"stop"}
        if unknown:
            raise GenerationError(f"unknown sampling parameter(s): {sorted(unknown)}")
        stop = d.get("stop") or ()
        if isinstance(stop, str):
            stop = (stop,)
        s = cls(**known, stop=tuple(stop))
        if s.temperature < 0 or not 0 < s.top_p <= 1 or s.top_k < 0 or s.max_new_tokens < 1:
            raise GenerationError(f"invalid sampling parameters: {s}")
        return s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenResult:
    id: str
    text: str
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Backend(Protocol):
    name: str
    model: str
    revision: str | None

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]: ...

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[GenResult]: ...


class BackendBase:
    """Common parts: ``generate`` in request order on top of ``generate_iter``."""

    name = "base"
    model = ""
    revision: str | None = None

    def generate_iter(self, requests: list[GenRequest], sampling: Sampling
                      ) -> Iterator[GenResult]:
        raise NotImplementedError

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[GenResult]:
        check_requests(requests)
        by_id = {r.id: r for r in self.generate_iter(requests, sampling)}
        return [by_id[r.id] for r in requests]


def check_requests(requests: Iterable[GenRequest]) -> None:
    seen: set[str] = set()
    for r in requests:
        if r.id in seen:
            raise GenerationError(f"duplicate request id {r.id!r}")
        seen.add(r.id)
        if not r.messages:
            raise GenerationError(f"request {r.id!r} has no messages")
        for m in r.messages:
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise GenerationError(f"request {r.id!r}: each message needs role and content")


def split_prefill(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], bool]:
    """``(messages, is_prefill)``: a final assistant message is continued, not answered."""
    return messages, bool(messages) and messages[-1]["role"] == "assistant"


def model_revision(model_dir: str | os.PathLike) -> str | None:
    """The revision recorded beside a model (``prefbias_model.json``), else a content hash."""
    p = Path(model_dir)
    meta = p / "prefbias_model.json"
    if meta.exists():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            info = {}
        for key in ("revision", "commit", "sha256"):
            if info.get(key):
                return str(info[key])
    if not p.is_dir():
        return None
    # weights' names + sizes + config: cheap and changes whenever the model is re-saved
    parts = []
    for f in sorted(p.iterdir()):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"):
            parts.append(f"{f.name}:{f.stat().st_size}")
            if f.name == "config.json":
                parts.append(f.read_text(encoding="utf-8"))
    return "sha256:" + sha256_text("\n".join(parts))[:16]


def result_row(req: GenRequest, res: GenResult, backend: Backend, sampling: Sampling
               ) -> dict[str, Any]:
    """A generation record (``docs/ARCHITECTURE.md``, record schemas)."""
    return {"id": req.id, "messages": req.messages, "response": res.text,
            "finish_reason": res.finish_reason, "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens, "model": backend.model,
            "revision": backend.revision, "backend": backend.name,
            "sampling": sampling.to_dict()}


def partial_path(out: str | os.PathLike) -> Path:
    """Sidecar of a resumable output: ``<out>.partial.jsonl`` (outside the declared output)."""
    return Path(f"{out}.partial.jsonl")


def _provenance(row: Mapping[str, Any]) -> tuple:
    return (row.get("model"), row.get("revision"), row.get("backend"),
            json.dumps(row.get("sampling"), sort_keys=True))


def read_partial(path: Path, want: tuple | None = None) -> dict[str, dict[str, Any]]:
    """Rows of a partial file by id. A torn last line (crash mid-write) is cut off; rows made
    with another model/backend/sampling (``want`` provenance) are discarded."""
    if not path.exists():
        return {}
    rows: dict[str, dict[str, Any]] = {}
    good_bytes = 0
    stale = 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
                if not raw.endswith(b"\n"):
                    raise ValueError("torn line")
            except ValueError:
                log.warning("%s: dropping an incomplete last line (interrupted write)", path)
                break
            good_bytes += len(raw)
            if want is not None and _provenance(row) != want:
                stale += 1
                continue
            rows[row["id"]] = row
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
    if stale:
        log.warning("%s: ignoring %d rows generated with another model/backend/sampling", path,
                    stale)
    return rows


def run_resumable(backend: Backend, requests: list[GenRequest], sampling: Sampling,
                  out: str | os.PathLike, *, extra: Mapping[str, Mapping[str, Any]] | None = None,
                  finalize: bool = True) -> dict[str, Any]:
    """Generate ``requests`` into ``out`` (JSONL, request order), resumably.

    Every finished row is appended (and flushed + fsynced) to ``<out>.partial.jsonl``; on restart
    ids already there are skipped, so no request is made twice after a crash. When every id is
    done the final file is written atomically and the partial file removed. ``extra[id]`` is merged
    into that id's row. Returns counts ``{n, resumed, generated, finish_reasons}``.
    """
    check_requests(requests)
    part = partial_path(out)
    part.parent.mkdir(parents=True, exist_ok=True)
    want = (backend.model, backend.revision, backend.name,
            json.dumps(sampling.to_dict(), sort_keys=True))
    done = read_partial(part, want)
    wanted_ids = {r.id for r in requests}
    done = {k: v for k, v in done.items() if k in wanted_ids}
    todo = [r for r in requests if r.id not in done]
    by_id = {r.id: r for r in requests}
    if done:
        log.info("%s: resuming, %d of %d already generated", out, len(done), len(requests))
    if done and len(done) != sum(1 for _ in open(part, encoding="utf-8")):
        # rewrite the partial file with only the rows we keep
        with atomic_open(part) as fh:
            for row in done.values():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif not done and part.exists():
        part.unlink()
    generated = 0
    if todo:
        with open(part, "a", encoding="utf-8") as fh:
            for res in backend.generate_iter(todo, sampling):
                req = by_id[res.id]
                row = result_row(req, res, backend, sampling)
                if extra and res.id in extra:
                    row.update(extra[res.id])
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                done[res.id] = row
                generated += 1
    missing = [r.id for r in requests if r.id not in done]
    if missing:
        raise GenerationError(f"{out}: backend returned no result for {len(missing)} request(s), "
                              f"e.g. {missing[:3]}")
    reasons: dict[str, int] = {}
    for r in requests:
        fr = done[r.id]["finish_reason"]
        reasons[fr] = reasons.get(fr, 0) + 1
    if finalize:
        with atomic_open(out) as fh:
            for r in requests:
                fh.write(json.dumps(done[r.id], ensure_ascii=False) + "\n")
        part.unlink(missing_ok=True)
    log.info("%s: %d rows (%d resumed, %d generated), finish reasons %s", out, len(requests),
             len(requests) - generated, generated, reasons)
    return {"n": len(requests), "resumed": len(requests) - generated, "generated": generated,
            "finish_reasons": reasons}


def load_prompts(path: str | os.PathLike) -> list[GenRequest]:
    """Eval-prompt rows ``{"id", "messages", ...}`` as requests (validated)."""
    from prefbias.io import UniqueIds, check_field, iter_jsonl

    out = []
    ids = UniqueIds(path)
    for line, row in iter_jsonl(path):
        rid = check_field(row, "id", str, path=path, line=line, nonempty=True)
        ids.add(rid, line)
        msgs = check_field(row, "messages", list, path=path, line=line, nonempty=True)
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                    m.get("role") not in ("system", "user", "assistant"):
                raise DataError(path, "each message needs a role and a string content",
                                line=line, field="messages")
        out.append(GenRequest(rid, msgs))
    return out
