"""Fetch one raw dataset (a ``config["datasets"]`` entry) to ``W/raw/<name>/<split>.jsonl``.

Sources:

* ``hf``    — ``datasets.load_dataset(repo, name=subset, revision=revision, split=hf_split)`` for
  every ``splits: {our_split: hf_split}`` entry; rows are written as JSON lines.
* ``url``   — ``files: {split: {url, sha256}}``: downloaded with retries and a timeout, the sha256
  is checked when given (an error names the expected and the actual digest).
* ``local`` — ``files: {split: {path, sha256}}``: a file of this repository, copied (sha256 checked
  when given). A file outside the repository (the working directory Snakemake runs in) is copied
  only with its sha256 pinned: nothing else records what it held.

All splits of a dataset appear together and only when every one is complete (temporary files are
renamed at the end; a failure leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prefbias.io import DataError, atomic_path, sha256_file

log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A download failed or a checksum did not match."""


def output_files(spec: dict[str, Any]) -> list[str]:
    """Our split names for a dataset config entry (the files ``fetch`` writes)."""
    if spec["source"] == "hf":
        return list(spec["splits"])
    return list(spec["files"])


def fetch(spec: dict[str, Any], name: str, outdir: str | os.PathLike, *,
          splits: list[str] | None = None, retries: int = 4, timeout: float = 60.0,
          backoff: float = 2.0) -> dict[str, str]:
    """Fetch the splits (default: all) of dataset ``name``; return ``{split: sha256}``."""
    outdir = Path(outdir)
    source = spec.get("source")
    known = output_files(spec) if source in ("hf", "url", "local") else []
    if not known:
        raise DataError(f"datasets.{name}", f"unknown source {source!r} or no splits/files")
    for split in splits or []:
        if split not in known:
            raise DataError(f"datasets.{name}", f"no split {split!r} (has {', '.join(known)})")
    splits = list(splits) if splits else known
    digests: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for split in splits:
            tmp = stack.enter_context(atomic_path(outdir / f"{split}.jsonl"))
            if source == "hf":
                _fetch_hf(spec, split, tmp)
            elif source == "url":
                _fetch_url(spec["files"][split], tmp, name=name, split=split, retries=retries,
                           timeout=timeout, backoff=backoff)
            else:
                _fetch_local(spec["files"][split], tmp, name=name, split=split)
            digests[split] = sha256_file(tmp)
            log.info("%s/%s: %s (sha256 %s)", name, split, _count_lines(tmp), digests[split])
    return digests


def _count_lines(path: Path) -> str:
    with open(path, "rb") as fh:
        n = sum(1 for line in fh if line.strip())
    return f"{n} rows"


def _fetch_hf(spec: dict[str, Any], split: str, tmp: Path) -> None:
    import datasets

    hf_split = spec["splits"][split]
    log.info("load_dataset(%r, name=%r, revision=%r, split=%r)", spec["repo"], spec.get("subset"),
             spec["revision"], hf_split)
    ds = datasets.load_dataset(spec["repo"], name=spec.get("subset"), revision=spec["revision"],
                               split=hf_split)
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in ds:
            fh.write(json.dumps(row, ensure_ascii=False, default=str))
            fh.write("\n")


def _verify(path: Path, expected: str | None, *, what: str) -> None:
    actual = sha256_file(path)
    if expected is None:
        log.warning("%s: no sha256 configured; downloaded file has sha256 %s (pin it in "
                    "config.yaml)", what, actual)
        return
    if actual != expected.lower():
        raise FetchError(f"{what}: sha256 mismatch: expected {expected}, got {actual}")


def download(url: str, dest: Path, *, retries: int = 4, timeout: float = 60.0,
             backoff: float = 2.0) -> None:
    """Download ``url`` to ``dest`` (overwritten), retrying transient failures."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "prefbias-fetch"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as fh:
                shutil.copyfileobj(resp, fh, 1 << 20)
            return
        except urllib.error.HTTPError as e:
            last = e
            if 400 <= e.code < 500 and e.code not in (408, 429):
                break                                   # not transient
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = e
        if attempt < retries:
            wait = backoff * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, last, attempt,
                        retries - 1, wait)
            time.sleep(wait)
    raise FetchError(f"could not download {url}: {last}")


def _fetch_url(fspec: dict[str, Any], tmp: Path, *, name: str, split: str, retries: int,
               timeout: float, backoff: float) -> None:
    url = fspec.get("url")
    if not url:
        raise DataError(f"datasets.{name}.files.{split}", "source url needs a 'url'")
    log.info("downloading %s", url)
    download(url, tmp, retries=retries, timeout=timeout, backoff=backoff)
    _verify(tmp, fspec.get("sha256"), what=f"{name}/{split} ({url})")


def outside_repository(path: str | os.PathLike, root: str | os.PathLike | None = None) -> bool:
    """Whether ``path`` (relative paths from ``root``, default the working directory: the
    repository root where Snakemake runs) resolves, symlinks followed, outside ``root``."""
    base = Path(root if root is not None else Path.cwd()).resolve()
    p = Path(path)
    return not (p if p.is_absolute() else base / p).resolve().is_relative_to(base)


def unpinned_outside_message(path: str, key: str) -> str:
    return (f"{path} is outside the repository ({Path.cwd()}) and has no sha256: such a file is "
            f"copied only with its sha256 pinned ({key}.sha256), or copy it into the repository")


def _fetch_local(fspec: dict[str, Any], tmp: Path, *, name: str, split: str) -> None:
    src = fspec.get("path")
    key = f"datasets.{name}.files.{split}"
    if not src:
        raise DataError(key, "source local needs a 'path'")
    if not fspec.get("sha256") and outside_repository(src):
        raise DataError(key, unpinned_outside_message(src, key), field="sha256")
    if not Path(src).is_file():
        raise DataError(src, "local dataset file does not exist")
    shutil.copyfile(src, tmp)
    if fspec.get("sha256"):
        _verify(tmp, fspec["sha256"], what=f"{name}/{split} ({src})")
