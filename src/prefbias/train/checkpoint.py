"""Checkpoints in ``W/ckpt/<model>/`` (outside declared outputs): trainable weights, optimizer,
scheduler, RNG states and data position. Each is written atomically as ``step-<n>/``; the file
``latest`` names the newest complete one. A checkpoint made with other settings or data (its
fingerprint differs) or with a missing file is refused with an error naming the cause.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from prefbias.io import atomic_open, atomic_path

FILES = ("weights.pt", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")


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


def save(ckpt_dir: Path, *, model, optimizer, scheduler, state: dict[str, Any], keep: int = 1
         ) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['global_step']}"
    with atomic_path(ckpt_dir / name, is_dir=True) as tmp:
        torch.save(trainable_state(model), tmp / "weights.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    with atomic_open(ckpt_dir / "latest") as fh:
        fh.write(name + "\n")
    olds = sorted((p for p in ckpt_dir.glob("step-*") if p.name != name),
                  key=lambda p: int(p.name.split("-")[1]))
    for p in olds[:max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return ckpt_dir / name


def find_latest(ckpt_dir: Path, fingerprint: str) -> Path | None:
    """The newest checkpoint to resume from, or None; raises if it is unusable."""
    pointer = ckpt_dir / "latest"
    if not pointer.exists():
        return None
    path = ckpt_dir / pointer.read_text(encoding="utf-8").strip()
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} named in {pointer} does not exist; delete "
                              f"{ckpt_dir} to start over")
    for f in FILES:
        if not (path / f).exists():
            raise CheckpointError(f"checkpoint file {path / f} is missing (incomplete or damaged "
                                  f"checkpoint); delete {ckpt_dir} to start over")
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint:
        raise CheckpointError(f"checkpoint {path} was made with other settings, data or initial "
                              f"model (fingerprint {state.get('fingerprint')} != {fingerprint}); "
                              f"delete {ckpt_dir} to start over")
    return path


def load(path: Path, *, model, optimizer, scheduler) -> dict[str, Any]:
    try:
        weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        missing = set(n for n, p in model.named_parameters() if p.requires_grad) - set(weights)
        if missing:
            raise CheckpointError(f"checkpoint {path}/weights.pt lacks {sorted(missing)[:3]}...")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in weights.items():
                params[n].copy_(t.to(params[n].device, params[n].dtype))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                             weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file: name it
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e
    return json.loads((path / "state.json").read_text(encoding="utf-8"))
