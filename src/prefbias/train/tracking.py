"""Experiment tracking of a training run through ``accelerate``'s own trackers (the ``report_to``
of the Hugging Face Trainer): TensorBoard always, Weights & Biases and MLflow when the config's
``tracking.report_to`` lists them (and the library is installed: ``pip install wandb`` /
``pip install mlflow``; they are not part of the pinned environment).

* TensorBoard event files are written beside the checkpoints (``<ckpt>/tb/``, so a resumed run
  keeps appending, with ``purge_step`` dropping what an interrupted run logged past its last
  checkpoint) and copied into ``results/<run>/train/<model>/tb/`` when training completes: the
  declared output that the freeze checksums. ``tensorboard --logdir results/<run>/train`` shows
  every model of a run.
* Weights & Biases runs offline by default (``tracking.wandb.mode: offline``; files under
  ``work/<run>/tracking/wandb``; ``wandb sync`` uploads them later). Its API key, if ever needed,
  is read by wandb itself from the environment.
* MLflow logs to a local store, ``work/<run>/tracking/mlflow.db`` (SQLite: MLflow 3 keeps its
  ``./mlruns`` file store in maintenance mode and refuses it by default), unless
  ``tracking.mlflow.tracking_uri`` names another (``mlflow ui --backend-store-uri
  sqlite:///work/<run>/tracking/mlflow.db``).

Metric names are ``<split>/<key>`` (``train/loss``, ``eval/reward_accuracy``), the step is the
optimizer step: the same rows as ``metrics.jsonl``.
"""

from __future__ import annotations

import importlib
import logging
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb", "mlflow")
SKIP = ("step", "split", "epoch", "cycle")  # positions, not metrics


class TrackingError(RuntimeError):
    pass


def require(library: str) -> ModuleType:
    """The tracker's library, imported; a :class:`TrackingError` that says how to install it
    when ``tracking.report_to`` lists a tracker whose library is missing."""
    try:
        return importlib.import_module(library)
    except ImportError as e:
        raise TrackingError(f"tracking.report_to lists {library}, which is not installed "
                            f"(pip install {library})") from e


def tracking_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The ``tracking`` section with the schema's defaults (also of its sub-blocks): already so
    in a loaded config (prefbias.config.fill_defaults); filled here for a partial one."""
    import copy

    from prefbias.config import fill_defaults

    return fill_defaults({"tracking": copy.deepcopy(dict(spec or {}))})["tracking"]


def metric_values(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row as tracker values: numeric fields only, named ``<split>/<key>``."""
    skip = SKIP + (("lr",) if row["split"] == "eval" else ())  # an eval row repeats train's lr
    return {f"{row['split']}/{k}": float(v) for k, v in row.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Trackers:
    """The trackers of one training process (main process only), opened by :meth:`start`."""

    def __init__(self, spec: dict[str, Any] | None, *, model_id: str, tb_root: Path,
                 work_dir: str | Path | None = None):
        self.spec = tracking_spec(spec)
        self.model_id = model_id
        self.tb_root = Path(tb_root)
        self.work_dir = Path(work_dir) if work_dir else self.tb_root.parent / "tracking"
        self.trackers: list[Any] = []

    @property
    def tb_dir(self) -> Path:
        """Where TensorBoard writes its event files (``<tb_root>/<model_id>``)."""
        return self.tb_root / self.model_id

    def start(self, *, resume_step: int, config: dict[str, Any]) -> None:
        from accelerate.tracking import TensorBoardTracker

        if not resume_step and self.tb_dir.exists():
            # events of a run killed before its first checkpoint: that run starts over
            shutil.rmtree(self.tb_dir)
        wanted = list(dict.fromkeys(["tensorboard", *self.spec["report_to"]]))
        for name in wanted:
            if name == "tensorboard":
                # purge_step: events an interrupted run wrote after its last checkpoint go
                kw = {"purge_step": resume_step + 1} if resume_step else {}
                t = TensorBoardTracker(self.model_id, str(self.tb_root), **kw)
            elif name == "wandb":
                t = self._wandb()
            elif name == "mlflow":
                t = self._mlflow()
            else:
                raise TrackingError(f"tracking.report_to: unknown tracker '{name}' "
                                    f"({' | '.join(TRACKERS)})")
            t.start()
            self.trackers.append(t)
        flat = _flat_config(config)
        for t in self.trackers:
            if t.name == "tensorboard":
                if not resume_step:
                    t.log({"config": "\n".join(f"    {k}: {v}" for k, v in flat.items())},
                          step=0)
            else:
                t.store_init_configuration(flat)
        log.info("tracking %s with %s (TensorBoard events in %s)", self.model_id,
                 ", ".join(t.name for t in self.trackers), self.tb_dir)

    def _wandb(self):
        require("wandb")
        from accelerate.tracking import WandBTracker

        w = self.spec["wandb"]
        d = Path(w.get("dir") or self.work_dir / "wandb")
        d.mkdir(parents=True, exist_ok=True)
        return WandBTracker(w["project"], name=self.model_id, mode=w["mode"], dir=str(d),
                            reinit=True)

    def _mlflow(self):
        mlflow = require("mlflow")
        from accelerate.tracking import MLflowTracker

        m = self.spec["mlflow"]
        uri = m.get("tracking_uri")
        if not uri:  # MLflow's local database store (its file store is in maintenance mode)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}"
        mlflow.set_tracking_uri(uri)
        return MLflowTracker(experiment_name=m["experiment"], run_name=self.model_id)

    def log(self, row: dict[str, Any]) -> None:
        values = metric_values(row)
        if values:
            for t in self.trackers:
                t.log(values, step=int(row["step"]))

    def finish(self) -> None:
        for t in self.trackers:
            try:
                t.finish()
            except Exception as e:  # noqa: BLE001 - one tracker failing to close must not hide
                log.warning("closing tracker %s failed: %s", t.name, e)  # the training result
        self.trackers = []


def _flat_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as ``{dotted.key: scalar}`` (trackers take flat scalar hyper-parameters)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_config(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(map(str, v))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v if v is not None else "None"
        else:
            out[key] = str(v)
    return out


def keep_event_files(tb_dir: Path, out: str | Path) -> None:
    """Copy the TensorBoard event files of a finished run into ``out`` (atomically)."""
    from prefbias.io import atomic_path

    with atomic_path(out, is_dir=True) as tmp:
        if Path(tb_dir).is_dir():
            shutil.copytree(tb_dir, tmp, dirs_exist_ok=True)
        n = sum(1 for _ in tmp.rglob("events.out.tfevents.*"))
        if n == 0:
            raise TrackingError(f"no TensorBoard event files in {tb_dir}: the training curves "
                                f"would be lost")
    log.info("kept %d TensorBoard event file(s) in %s", n, out)
