"""``prefbias publish``: upload a frozen run's trained models and its SAA / style variant sets to
the Hugging Face Hub with ``huggingface_hub`` (``HfApi.create_repo`` + ``upload_folder``), each
with its card (``results/<run>/cards/``) as README.md.

* Private by default (``--public`` to change); repositories are named
  ``<namespace>/prefbias-<run>-<model or set>``.
* The token comes only from the environment (``HF_TOKEN``, read by huggingface_hub itself); it is
  never an argument, never logged.
* ``--dry-run`` lists what would be uploaded (repository, file, size) and uploads nothing; the
  tests exercise that path (no Hub endpoint is reachable here).
* Only a frozen run is published: ``prefbias verify`` must find it intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PublishError(RuntimeError):
    pass


@dataclass
class Upload:
    repo_id: str
    repo_type: str              # model | dataset
    files: dict[str, Path]      # path in the repository -> local file

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def plan_uploads(config: dict[str, Any], results: str | Path, work: str | Path,
                 namespace: str) -> list[Upload]:
    """What ``publish`` uploads: one model repository per trained model (its weights,
    tokenizer and card), one dataset repository per card dataset (its splits and card)."""
    from prefbias import plan
    from prefbias.report.cards import card_prefsets

    results, work = Path(results), Path(work)
    run = config["run"]
    out = []
    for m in plan.trained_models(config):
        d = work / "models" / "trained" / m
        card = results / "cards" / "models" / m / "README.md"
        if not d.is_dir():
            raise PublishError(f"{d}: model directory missing (train it first)")
        if not card.is_file():
            raise PublishError(f"{card}: model card missing (run the report stage)")
        files = {p.relative_to(d).as_posix(): p for p in sorted(d.rglob("*")) if p.is_file()
                 and p.name != "README.md"}
        files["README.md"] = card
        out.append(Upload(f"{namespace}/prefbias-{run}-{m}", "model", files))
    for ps in card_prefsets(config):
        d = work / "data" / "prefs" / ps
        card = results / "cards" / "datasets" / ps / "README.md"
        if not card.is_file():
            raise PublishError(f"{card}: dataset card missing (run the report stage)")
        files = {f"data/{p.name}": p for p in sorted(d.glob("*.jsonl"))}
        files["README.md"] = card
        out.append(Upload(f"{namespace}/prefbias-{run}-{ps}", "dataset", files))
    return out


def listing(uploads: list[Upload], private: bool) -> str:
    lines = []
    for u in uploads:
        lines.append(f"{u.repo_type} {u.repo_id} ({'private' if private else 'public'}, "
                     f"{len(u.files)} files, {u.size():,} bytes)")
        lines += [f"    {name}  {p.stat().st_size:,} B  <- {p}" for name, p in u.files.items()]
    return "\n".join(lines)


@contextmanager
def staged(u: Upload) -> Iterator[Path]:
    """A folder holding the repository's files as ``upload_folder`` wants them (hard links where
    the file system allows, copies otherwise)."""
    with tempfile.TemporaryDirectory(prefix="prefbias-publish-") as td:
        for name, src in u.files.items():
            dst = Path(td) / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        yield Path(td)


def publish(uploads: list[Upload], *, private: bool = True, endpoint: str | None = None,
            log=print) -> list[str]:
    """Create each repository (private unless told) and upload its folder; returns commit URLs."""
    if not os.environ.get("HF_TOKEN"):
        raise PublishError("HF_TOKEN is not set: the Hub token is read from the environment "
                           "only (export HF_TOKEN=...), or use --dry-run")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)  # token: huggingface_hub reads HF_TOKEN itself
    urls = []
    for u in uploads:
        api.create_repo(u.repo_id, repo_type=u.repo_type, private=private, exist_ok=True)
        with staged(u) as folder:
            info = api.upload_folder(repo_id=u.repo_id, repo_type=u.repo_type,
                                     folder_path=folder,
                                     commit_message="prefbias publish")
        log(f"uploaded {u.repo_id}: {info}")
        urls.append(str(info))
    return urls
