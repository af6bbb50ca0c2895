"""Checkpoints in ``W/ckpt/<model>/`` (outside declared outputs): trainable weights, optimizer,
scheduler, RNG states, data position (``state.json``) and the metrics rows logged so far
(``metrics.jsonl``). Each is written atomically as ``step-<n>/`` with ``checksums.json`` (sha256 of
every other file) written last; the file ``latest`` names the newest complete one.

On resume every file is checked against its checksum and parsed; a damaged file is named in the
error. If an older complete checkpoint is still on disk (``keep`` > 1, the default 2 of
``checkpoint_keep``), the resume falls back to it and says so in the log. A missing, empty or
unreadable ``latest`` falls back to the newest intact ``step-<n>`` directory (logged), so it never
silently restarts from step 0. A checkpoint made on other initial weights is refused with an error
naming both init fingerprints (:func:`model_fingerprint`: sha256 over the *content* of the weight,
config and tokenizer files, so a new tiny seed or a bumped revision with the same shapes is
caught); one made with other settings or data (its fingerprint differs) is refused naming both
fingerprints. Temporaries left by a writer killed mid-save (``.step-<n>.tmp-*``) are removed on the
next save or resume. A write that fails for lack of space (``ENOSPC``, a quota, another storage
error) is raised as :class:`CheckpointError` naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from prefbias.io import DataError, atomic_open, atomic_path, remove_stale_temporaries, sha256_file

log = logging.getLogger(__name__)

DATA_FILES = ("weights.pt", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json",
              "metrics.jsonl")
CHECKSUMS = "checksums.json"
FILES = (*DATA_FILES, CHECKSUMS)


class CheckpointError(RuntimeError):
    pass


MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
_fingerprints: dict[tuple, str] = {}  # per process: a recipe and its reference check share one


def model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 over the content of a saved model directory's weights (``*.safetensors``,
    ``*.bin``), config and tokenizer files: the identity of the weights a run starts from."""
    d = Path(model_dir)
    files = sorted(p for p in d.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin") or p.name in MODEL_FILES))
    if not files:
        raise DataError(d, "no model files to fingerprint (not a saved model directory)")
    stats = [(p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = (str(d.resolve()), tuple(p.name for p in files), tuple(stats))
    if memo not in _fingerprints:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode())
            h.update(sha256_file(p).encode())
        _fingerprints[memo] = h.hexdigest()
    return _fingerprints[memo]


def write_error(path: str | Path, e: OSError, what: str = "checkpoint") -> CheckpointError:
    """A clear error for a failed write: the path and the cause (disk full, quota, ...)."""
    cause = STORAGE_ERRORS.get(e.errno or 0, e.strerror or type(e).__name__)
    return CheckpointError(f"cannot write the {what} {path}: {cause} ({type(e).__name__}"
                           f"{f' errno {e.errno}' if e.errno else ''}: {e}); free space or "
                           f"move the work directory, then rerun (training resumes from the "
                           f"last complete checkpoint)")


# what a write of the checkpoint or model can hit on the storage side (the others pass unchanged)
STORAGE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EFBIG: "file too large for the filesystem",
                  errno.EROFS: "read-only filesystem", errno.EIO: "input/output error"}
_NO_SPACE_TEXT = re.compile(r"No space left on device|StorageFull|os error 28|code: 28|"
                            r"Disk quota exceeded", re.I)


def os_error_of(e: BaseException) -> OSError | None:
    """The OSError behind ``e``: ``e`` itself, its cause or context, or one its text names
    (safetensors reports ``IoError(Os { code: 28, kind: StorageFull })`` in its own exception
    class)."""
    cur: BaseException | None = e
    for _ in range(8):
        if cur is None:
            break
        if isinstance(cur, OSError):
            return cur
        m = _NO_SPACE_TEXT.search(str(cur))
        if m:
            code = errno.EDQUOT if "quota" in m.group(0).lower() else errno.ENOSPC
            return OSError(code, os.strerror(code))
        cur = cur.__cause__ or cur.__context__
    return None


def free_space_error(path: Path) -> OSError | None:
    """ENOSPC when the filesystem of ``path`` (or of its nearest existing parent) has no free
    block left: what torch's opaque writer errors ("iostream error", "unexpected pos") mean when
    the disk is full. Ask while the partial file still fills the disk."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    if st.f_bavail == 0:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


class _Target:
    path: Path


@contextlib.contextmanager
def named_write_errors(path: str | Path, what: str = "checkpoint") -> Iterator[_Target]:
    """Turn a failed write inside the block into a :class:`CheckpointError` naming
    ``target.path`` (set it before each file) and the cause, when the cause is a full disk, a
    quota or another storage error (:data:`STORAGE_ERRORS`); other errors pass unchanged. Put
    it *inside* the :func:`~prefbias.io.atomic_path` block, so the free space is checked before
    the partial output is removed."""
    target = _Target()
    target.path = Path(path)
    try:
        yield target
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a write failure
        cause = os_error_of(e)
        if cause is None or cause.errno not in STORAGE_ERRORS:
            cause = free_space_error(target.path)
        if cause is None:
            raise
        raise write_error(target.path, cause, what) from e


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    st = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _step_of(p: Path) -> int:
    try:
        return int(p.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def step_dirs(ckpt_dir: Path) -> list[Path]:
    """Complete-looking ``step-<n>`` directories, newest first."""
    return sorted((p for p in ckpt_dir.glob("step-*") if p.is_dir() and _step_of(p) >= 0),
                  key=_step_of, reverse=True)


def remove_stale(ckpt_dir: Path) -> None:
    """Drop temporaries of a save or pointer update that was killed (full weights, often)."""
    if not ckpt_dir.is_dir():
        return
    names = {p.name.split(".tmp-")[0].lstrip(".") for p in ckpt_dir.glob(".*.tmp-*")}
    for name in sorted(names):
        for p in remove_stale_temporaries(ckpt_dir / name):
            log.info("removed %s left by an interrupted checkpoint write", p)


def save(ckpt_dir: Path, *, model, optimizer, scheduler, state: dict[str, Any],
         metrics_rows: list[dict[str, Any]] | None = None, keep: int = 2) -> Path:
    """Write ``step-<global_step>/`` and point ``latest`` at it; keep the newest ``keep``
    checkpoints. A failed write (disk full: ``ENOSPC``) raises :class:`CheckpointError` naming
    the path and the cause; the previous checkpoints stay intact."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(ckpt_dir)
    name = f"step-{state['global_step']}"
    rows = [r for r in (metrics_rows or []) if r["step"] <= state["global_step"]]
    final = ckpt_dir / name
    files = {"weights.pt": lambda f: torch.save(trainable_state(model), f),
             "optimizer.pt": lambda f: torch.save(optimizer.state_dict(), f),
             "scheduler.pt": lambda f: torch.save(scheduler.state_dict(), f),
             "rng.pt": lambda f: torch.save(rng_state(), f),
             "state.json": lambda f: f.write_text(json.dumps(state, indent=2), encoding="utf-8"),
             "metrics.jsonl": lambda f: f.write_text("".join(json.dumps(r) + "\n" for r in rows),
                                                     encoding="utf-8")}
    with atomic_path(final, is_dir=True) as tmp, named_write_errors(final) as target:
        for fname, write in files.items():
            target.path = final / fname
            write(tmp / fname)
        sums = {f: sha256_file(tmp / f) for f in DATA_FILES}
        target.path = final / CHECKSUMS
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1), encoding="utf-8")
    with atomic_open(ckpt_dir / "latest") as fh, named_write_errors(ckpt_dir / "latest"):
        fh.write(name + "\n")
        fh.flush()
    olds = [p for p in step_dirs(ckpt_dir) if p.name != name]
    for p in olds[max(0, keep - 1):]:
        shutil.rmtree(p, ignore_errors=True)
    return ckpt_dir / name


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint file {path} is unreadable ({what}: {e}); the "
                              f"checkpoint is damaged") from e


def read_state(path: Path) -> dict[str, Any]:
    state = _read_json(path / "state.json", "state")
    need = ("fingerprint", "global_step", "cycle", "step_in_cycle", "tokens", "slots",
            "runtime_s")
    lacking = [k for k in need if not isinstance(state, dict) or k not in state]
    if lacking:
        raise CheckpointError(f"checkpoint file {path / 'state.json'} lacks fields {lacking}")
    return state


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metrics rows stored with a checkpoint; a partial or bad line names file and line."""
    f = path / "metrics.jsonl"
    rows = []
    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"checkpoint file {f} is not UTF-8 text ({e}); the checkpoint "
                              f"is damaged") from e
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"checkpoint file {f}, line {i}: not a complete JSON row "
                                  f"({e.msg}); the checkpoint is damaged") from e
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise CheckpointError(f"checkpoint file {f}, line {i}: not a metrics row with an "
                                  f"integer 'step'")
        rows.append(row)
    return rows


def check(path: Path) -> dict[str, Any]:
    """Check one checkpoint directory: all files present, each matching its recorded sha256,
    ``state.json`` and ``metrics.jsonl`` parseable. Returns the state; raises
    :class:`CheckpointError` naming the first bad file."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    for f in FILES:
        if not (path / f).is_file():
            raise CheckpointError(f"checkpoint file {path / f} is missing (incomplete or damaged "
                                  f"checkpoint)")
    sums = _read_json(path / CHECKSUMS, "checksums")
    if not isinstance(sums, dict) or set(sums) != set(DATA_FILES):
        raise CheckpointError(f"checkpoint file {path / CHECKSUMS} does not list "
                              f"{list(DATA_FILES)}")
    for f in DATA_FILES:
        got = sha256_file(path / f)
        if got != sums[f]:
            raise CheckpointError(f"checkpoint file {path / f} does not match its checksum "
                                  f"(sha256 {got[:12]}… != recorded {str(sums[f])[:12]}…): the "
                                  f"file was damaged after it was written")
    state = read_state(path)
    read_metrics(path)
    return state


def _pointed(ckpt_dir: Path) -> Path | None:
    """The step directory ``latest`` names; None (logged) when the pointer is missing, empty,
    unreadable or names no ``step-<n>``: the caller then falls back to the step directories."""
    pointer = ckpt_dir / "latest"
    if not pointer.exists():
        if step_dirs(ckpt_dir):
            log.warning("%s is missing but step directories exist; resuming from the newest "
                        "intact one instead of restarting from step 0", pointer)
        return None
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as e:
        log.warning("%s is unreadable (%s); falling back to the newest intact step directory",
                    pointer, e)
        return None
    if not text or "/" in text or _step_of(Path(text)) < 0 or not text.startswith("step-"):
        log.warning("%s does not name a step directory (%r); falling back to the newest intact "
                    "step directory", pointer, text[:80])
        return None
    return ckpt_dir / text


def find_latest(ckpt_dir: Path, fingerprint: str, init_fingerprint: str | None = None
                ) -> Path | None:
    """The newest intact checkpoint to resume from, or None when there is none at all; raises
    if none is usable, or if it was made on other initial weights (``init_fingerprint``, see
    :func:`model_fingerprint`) or other settings. Removes temporaries of killed writes first:
    call it from one process of a run only."""
    remove_stale(ckpt_dir)
    named = _pointed(ckpt_dir)
    steps = step_dirs(ckpt_dir)
    if named is None and not steps:
        return None
    candidates = ([named, *[p for p in steps if _step_of(p) < _step_of(named)]]
                  if named is not None else steps)
    errors: list[str] = []
    for path in candidates:
        try:
            state = check(path)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            log.warning("checkpoint %s is damaged (%s); falling back to the older checkpoint %s",
                        candidates[0], errors[0], path)
        elif named is None:
            log.warning("resuming from %s, the newest intact step directory", path)
        made_on = state.get("init_fingerprint")
        if init_fingerprint is not None and made_on is not None and made_on != init_fingerprint:
            raise CheckpointError(f"checkpoint {path} was made on other initial weights (init "
                                  f"model fingerprint {made_on} in the checkpoint != "
                                  f"{init_fingerprint} of the model now); the result would match "
                                  f"neither model: delete {ckpt_dir} to start over")
        if state["fingerprint"] != fingerprint:
            raise CheckpointError(f"checkpoint {path} was made with other settings, data or "
                                  f"initial model (fingerprint {state['fingerprint']} != "
                                  f"{fingerprint}); delete {ckpt_dir} to start over")
        return path
    raise CheckpointError(f"{errors[0]}; no intact older checkpoint to fall back to: delete "
                          f"{ckpt_dir} to start over")


def load(path: Path, *, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore weights and RNG states, and the optimizer/scheduler states unless None (a resume at
    the start of a cycle, which begins with a fresh optimizer and schedule)."""
    try:
        weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        missing = set(n for n, p in model.named_parameters() if p.requires_grad) - set(weights)
        if missing:
            raise CheckpointError(f"checkpoint {path}/weights.pt lacks {sorted(missing)[:3]}...")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in weights.items():
                params[n].copy_(t.to(params[n].device, params[n].dtype))
        if optimizer is not None:
            optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                                 weights_only=True))
        if scheduler is not None:
            scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file: name it
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e
    return read_state(path)
