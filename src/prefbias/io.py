"""Atomic writes, checksums and validated JSONL reading.

Every output of the pipeline is written through :func:`atomic_path` (or a helper built on it):
the data goes to a temporary sibling first and is renamed into place only when complete, so a
failed or killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data. The message names the file, the 1-based line (if any) and the field."""

    def __init__(self, path: str | os.PathLike, message: str, *, line: int | None = None,
                 field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Works for files and (``is_dir=True``) directories. On error the temporary is removed and the
    previous content of ``path`` (if any) is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any):
    """``open`` for writing whose result appears at ``path`` only when the block completes."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False, sort_keys=False)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as JSON lines atomically; return the number of rows written."""
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def _utf8_error(path: Path, data: bytes, e: UnicodeDecodeError, *, line_offset: int = 0
                ) -> DataError:
    """A :class:`DataError` naming the line, column and bytes of invalid UTF-8 in ``data``."""
    start = data.rfind(b"\n", 0, e.start) + 1
    line = data.count(b"\n", 0, e.start) + 1 + line_offset
    bad = data[e.start:e.end].hex(" ")
    return DataError(path, f"not valid UTF-8 text: byte(s) {bad} at column {e.start - start + 1} "
                     f"({e.reason}); re-encode the file as UTF-8", line=line)


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of an input file; a missing file or invalid UTF-8 raises :class:`DataError`
    naming the file, line and bytes."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file does not exist")
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _utf8_error(p, data, e) from e


def read_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    return _loads(read_text(p), p, None)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               list: "a list", dict: "an object"}


def check_field(row: Mapping[str, Any], field: str, typ: type | tuple[type, ...], *,
                path: str | os.PathLike, line: int | None, optional: bool = False,
                nonempty: bool = False) -> Any:
    """Return ``row[field]`` after checking presence and type; raise :class:`DataError` if bad."""
    if not isinstance(row, Mapping):
        raise DataError(path, f"expected a JSON object, got {type(row).__name__}", line=line)
    if field not in row or row[field] is None:
        if optional:
            return None
        raise DataError(path, "missing required field", line=line, field=field)
    value = row[field]
    types = typ if isinstance(typ, tuple) else (typ,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise DataError(path, f"expected {want}, got {type(value).__name__}", line=line,
                        field=field)
    if nonempty and not value:
        raise DataError(path, "must not be empty", line=line, field=field)
    return value


class UniqueIds:
    """The ids of one file's rows, for every stage that keys rows by id: :meth:`add` raises a
    :class:`DataError` naming the file and both lines when an id repeats (two rows with one id
    would silently share, or overwrite, each other's results)."""

    def __init__(self, path: str | os.PathLike, field: str = "id"):
        self.path, self.field = path, field
        self.first: dict[str, int | None] = {}

    def add(self, rid: Any, line: int | None) -> None:
        key = str(rid)
        if key in self.first:
            first = self.first[key]
            where = f"line {first}" if first is not None else "an earlier row"
            raise DataError(self.path, f"duplicate id {rid!r}: already used on {where}; ids must "
                            "be unique within a file", line=line, field=self.field)
        self.first[key] = line


def check_unique_ids(path: str | os.PathLike, rows: Iterable[tuple[int | None, Mapping[str, Any]]],
                     field: str = "id") -> None:
    """:class:`UniqueIds` over ``(line, row)`` pairs."""
    ids = UniqueIds(path, field)
    for line, row in rows:
        ids.add(row.get(field), line)


MAX_ROW_BYTES_ENV = "PREFBIAS_MAX_ROW_BYTES"
DEFAULT_MAX_ROW_BYTES = 8 * 1024 * 1024  # 8 MiB: far above any real row, far below a job's memory


def max_row_bytes() -> int:
    """The longest JSONL line the readers accept: ``$PREFBIAS_MAX_ROW_BYTES`` or 8 MiB. Parsing
    a JSON row takes many times its size in memory (a 30 MB row: 7 GB), so a longer line is a
    :class:`DataError` instead of a job killed for memory."""
    value = os.environ.get(MAX_ROW_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_ROW_BYTES
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{MAX_ROW_BYTES_ENV}={value!r} is not a positive number of bytes")
    return n


def _loads(text: str | bytes, path: Path, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e.msg} (column {e.colno})",
                        line=line if line is not None else e.lineno) from e
    except RecursionError:
        raise DataError(path, "the JSON value is nested too deeply to read (more levels of "
                        "lists or objects than the parser can follow)", line=line) from None


def iter_jsonl(path: str | os.PathLike, *, max_bytes: int | None = None
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)`` for each non-blank line; bad JSON, bytes that are not UTF-8,
    a line longer than ``max_bytes`` (default :func:`max_row_bytes`) or nesting too deep to
    parse raise :class:`DataError` naming the file and line. An over-long line is never read
    whole."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file does not exist")
    limit = max_bytes or max_row_bytes()
    with open(p, "rb") as fh:
        lineno = 0
        while raw_bytes := fh.readline(limit + 1):
            lineno += 1
            if len(raw_bytes) > limit and not raw_bytes.endswith(b"\n"):
                raise DataError(p, f"the line is longer than {limit} bytes, the limit per JSONL "
                                f"row (set {MAX_ROW_BYTES_ENV} to raise it)", line=lineno)
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _utf8_error(p, raw_bytes, e, line_offset=lineno - 1) from e
            if not raw.strip():
                continue
            row = _loads(raw, p, lineno)
            if not isinstance(row, dict):
                raise DataError(p, f"expected a JSON object, got {type(row).__name__}",
                                line=lineno)
            yield lineno, row


def read_jsonl(path: str | os.PathLike, *, required: bool = False) -> list[dict[str, Any]]:
    """All rows of a JSONL file; ``required=True``: a file without any row is a
    :class:`DataError` (an empty input must never turn into an empty result)."""
    rows = [row for _, row in iter_jsonl(path)]
    if required and not rows:
        raise DataError(path, "no rows: the file is empty (or only blank lines) but at least one "
                        "row is required")
    return rows


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.tmp-*`` siblings that :func:`atomic_path` leaves behind when a writer of
    ``path`` is killed (SIGKILL skips its clean-up). Call it only where no other writer of the same
    ``path`` can be running (one Snakemake job per output). Returns what was removed."""
    final = Path(path)
    removed = []
    if not final.parent.is_dir():
        return removed
    for tmp in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        removed.append(tmp)
    return removed


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
