"""The secret values a process holds, and keeping them out of everything it stores.

An API key lives only in the environment variable a config section names (``api_key_env``).
A server may still send it back inside a successful answer (a misconfigured proxy, a test
server, a model quoting its request headers): everything stored from an answer (the API disk
cache, judge / grader / reward / generation rows) is therefore scrubbed of every secret value
first (:func:`scrub_obj`), and ``prefbias freeze`` refuses a results tree in which any secret
value appears (:func:`find_in_tree`), naming the file and the variable, never the value.

Secret values are those registered by the API client when it reads a key (:func:`register`),
plus the variables of :data:`STANDARD_ENV` and any variable a config names under an
``api_key_env`` key (:func:`config_env_names`). Values shorter than :data:`MIN_LENGTH`
characters are not treated as secrets (``EMPTY`` for a keyless ``vllm serve``, or a
placeholder such as ``x``, would otherwise match ordinary text everywhere).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STANDARD_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MIN_LENGTH = 8
REDACTED = "***"

_lock = threading.Lock()
_held: dict[str, str] = {}


def _usable(value: str | None) -> bool:
    return bool(value) and len(value) >= MIN_LENGTH and value != "EMPTY"


def register(env_name: str, value: str | None) -> None:
    """Remember that this process read ``value`` from the variable ``env_name``."""
    if _usable(value):
        with _lock:
            _held[env_name] = value  # type: ignore[assignment]


def from_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{name: value}`` of the variables among ``names`` that are set to a usable secret."""
    env = os.environ if environ is None else environ
    return {n: env[n] for n in dict.fromkeys(names) if _usable(env.get(n))}


def held(environ: Mapping[str, str] | None = None,
         names: Iterable[str] = ()) -> dict[str, str]:
    """Every secret this process holds: registered keys, :data:`STANDARD_ENV` and ``names``."""
    with _lock:
        out = dict(_held)
    out.update(from_env([*STANDARD_ENV, *names], environ))
    return out


def config_env_names(config: Any) -> list[str]:
    """Every variable name a config holds under an ``api_key_env`` key, at any depth."""
    out: list[str] = []
    if isinstance(config, Mapping):
        for k, v in config.items():
            if k == "api_key_env" and isinstance(v, str) and v:
                out.append(v)
            else:
                out += config_env_names(v)
    elif isinstance(config, list):
        for v in config:
            out += config_env_names(v)
    return list(dict.fromkeys(out))


def scrub_text(text: str, values: Iterable[str] | None = None) -> str:
    """``text`` with every secret value (default: :func:`held`) replaced by ``***``."""
    for v in sorted(held().values() if values is None else values, key=len, reverse=True):
        if v and v in text:
            text = text.replace(v, REDACTED)
    return text


def scrub_obj(obj: Any, values: Iterable[str] | None = None) -> Any:
    """A JSON-like value with every string (dict keys included: logprob tables are keyed by
    token) scrubbed by :func:`scrub_text`: a copy, or ``obj`` itself when no secret is held."""
    vals = list(held().values() if values is None else values)
    if not vals:
        return obj

    def walk(o: Any) -> Any:
        if isinstance(o, str):
            return scrub_text(o, vals)
        if isinstance(o, Mapping):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        return o

    return walk(obj)


def find_in_file(path: str | os.PathLike, secrets: Mapping[str, str],
                 chunk: int = 1 << 20) -> list[str]:
    """Names of the variables whose value occurs in the file (read in overlapping chunks)."""
    needles = {n: v.encode("utf-8") for n, v in secrets.items() if _usable(v)}
    if not needles:
        return []
    overlap = max(len(b) for b in needles.values()) - 1
    found: set[str] = set()
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            data = tail + block
            found.update(n for n, b in needles.items() if n not in found and b in data)
            if len(found) == len(needles):
                break
            tail = data[-overlap:] if overlap else b""
    return sorted(found)


def find_in_tree(root: str | os.PathLike, secrets: Mapping[str, str],
                 files: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(relative path, variable)`` for every secret value found in the files under ``root``
    (``files``: relative paths; default every regular file, symlinks not followed)."""
    root = Path(root)
    if files is None:
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.is_file() and not p.is_symlink())
    return [(rel, name) for rel in files for name in find_in_file(root / rel, secrets)]
