"""Disk cache for API answers (judge, LLM grader, reward endpoint): one JSON file per key.

The key is ``sha256`` of the canonical JSON of everything that determines the answer (model,
request text, decoding options); files live in ``<root>/<key[:2]>/<key>.json`` and are written
atomically, so concurrent jobs and killed runs never leave a half-written entry. A rerun with the
same inputs therefore makes zero requests. Nothing secret (API keys) is ever part of a key or
an entry: every value is scrubbed of the secret values the process holds
(:mod:`prefbias.held_secrets`) before it is written, and an entry read back that still holds one
(written by an older version, from a server that echoed the key) is scrubbed and rewritten.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from prefbias import held_secrets
from prefbias.io import atomic_open, sha256_text

log = logging.getLogger(__name__)


def cache_key(*parts: Any) -> str:
    return sha256_text(json.dumps(parts, sort_keys=True, ensure_ascii=False))


class DiskCache:
    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root else None
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        if self.root is None:
            self.misses += 1
            return None
        p = self._path(key)
        if not p.exists():
            self.misses += 1
            return None
        try:
            value = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            log.warning("ignoring unreadable cache entry %s", p)
            self.misses += 1
            return None
        clean = held_secrets.scrub_obj(value)
        if clean != value:
            log.warning("cache entry %s held a secret value; scrubbed and rewritten", p)
            self.put(key, clean)
        self.hits += 1
        return clean

    def put(self, key: str, value: Any) -> None:
        if self.root is None:
            return
        with atomic_open(self._path(key)) as fh:
            json.dump(held_secrets.scrub_obj(value), fh, ensure_ascii=False)
