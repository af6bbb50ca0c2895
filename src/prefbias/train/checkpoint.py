"""Checkpoints in ``W/ckpt/<model>/`` (outside declared outputs): trainable weights, optimizer,
scheduler, RNG states, data position (``state.json``) and the metrics rows logged so far
(``metrics.jsonl``). Each is written atomically as ``step-<n>/`` with ``checksums.json`` (sha256 of
every other file) written last; the file ``latest`` names the newest complete one.

On resume every file is checked against its checksum and parsed; a damaged file is named in the
error. If an older complete checkpoint is still on disk (``keep`` > 1), the resume falls back to
it and says so in the log. A checkpoint made with other settings or data (its fingerprint differs)
is refused with an error naming the cause. Temporaries left by a writer killed mid-save
(``.step-<n>.tmp-*``) are removed on the next save or resume.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from prefbias.io import atomic_open, atomic_path, remove_stale_temporaries, sha256_file

log = logging.getLogger(__name__)

DATA_FILES = ("weights.pt", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json",
              "metrics.jsonl")
CHECKSUMS = "checksums.json"
FILES = (*DATA_FILES, CHECKSUMS)


class CheckpointError(RuntimeError):
    pass


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
         metrics_rows: list[dict[str, Any]] | None = None, keep: int = 1) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(ckpt_dir)
    name = f"step-{state['global_step']}"
    rows = [r for r in (metrics_rows or []) if r["step"] <= state["global_step"]]
    with atomic_path(ckpt_dir / name, is_dir=True) as tmp:
        torch.save(trainable_state(model), tmp / "weights.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        (tmp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                           encoding="utf-8")
        sums = {f: sha256_file(tmp / f) for f in DATA_FILES}
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1), encoding="utf-8")
    with atomic_open(ckpt_dir / "latest") as fh:
        fh.write(name + "\n")
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


def find_latest(ckpt_dir: Path, fingerprint: str) -> Path | None:
    """The newest intact checkpoint to resume from, or None; raises if none is usable. Removes
    temporaries of killed writes first: call it from one process of a run only."""
    remove_stale(ckpt_dir)
    pointer = ckpt_dir / "latest"
    if not pointer.exists():
        return None
    try:
        named = ckpt_dir / pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{pointer} is unreadable ({e}); delete {ckpt_dir} to start "
                              f"over") from e
    older = [p for p in step_dirs(ckpt_dir) if _step_of(p) < _step_of(named)]
    errors: list[str] = []
    for path in [named, *older]:
        try:
            state = check(path)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            log.warning("checkpoint %s is damaged (%s); falling back to the older checkpoint %s",
                        named, errors[0], path)
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
