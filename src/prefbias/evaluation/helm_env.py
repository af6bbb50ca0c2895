"""HELM's per-run ``prod_env/``: how a local checkpoint is described to crfm-helm 0.5.16.

helm-offline.md fix 1: no ``--enable-local-huggingface-models`` (``helm-summarize`` would then
fetch the tokenizer from the hub). Each checkpoint gets its own ``model_deployments.yaml``,
``model_metadata.yaml`` (``release_date`` a real YAML date) and ``tokenizer_configs.yaml``, named
``local/<name>-<content hash>`` so HELM's answer cache (keyed by model name and prompt) can never
serve a previous checkpoint's answers. Fix 2: ``apply_chat_template`` is always explicit.
Fix 3: the deployment uses :class:`prefbias.evaluation.helm_client.RawLogitsHuggingFaceClient`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from prefbias.containers import in_container
from prefbias.io import atomic_open


class HelmError(RuntimeError):
    pass


def installed_version(bin_dir: str | Path) -> str | None:
    """The crfm-helm version of the HELM environment in ``bin_dir`` (None when unreadable)."""
    import subprocess

    code = "import importlib.metadata as m; print(m.version('crfm-helm'))"
    try:
        out = subprocess.run([str(Path(bin_dir) / "python"), "-c", code], capture_output=True,
                             text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if out.returncode == 0 and lines else None


def helm_bin_dir(spec: dict[str, Any], environ: dict[str, str] | None = None,
                 repo: str | Path | None = None, root: str | Path = "/") -> Path:
    """Directory with HELM's ``helm-run``, in this order:

    1. ``$PREFBIAS_HELM_BIN`` or config ``helm.python`` (a bin directory or a python in it);
    2. inside a container (``containers/helm.def``): ``helm-run`` on ``PATH`` (``/usr/local/bin``;
       the image has no ``.venv-helm``, and a ``.venv-helm`` of the bound working tree is the
       host's environment, not the image's);
    3. outside: ``.venv-helm/bin`` (repository root, then the working directory), then ``PATH``.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("PREFBIAS_HELM_BIN") or spec.get("python")
    where: list[str] = []
    if explicit:
        p = Path(explicit).expanduser()
        candidates = [p if p.is_dir() else p.parent]
    elif in_container(env, root):
        candidates = []
    else:
        base = Path(repo) if repo else Path(__file__).resolve().parents[3]
        candidates = [base / ".venv-helm" / "bin", Path.cwd() / ".venv-helm" / "bin"]
    for c in candidates:
        if (c / "helm-run").exists():
            return c.resolve()
    where += [str(c) for c in candidates]
    if not explicit:
        found = shutil.which("helm-run", path=env.get("PATH", ""))
        if found:
            return Path(found).resolve().parent
        where.append(f"PATH ({env.get('PATH', '')})")
    hint = ("build images/helm.sif from containers/helm.def (helm-run in /usr/local/bin)"
            if in_container(env, root) else "create the HELM environment with "
            "scripts/setup-helm-env.sh")
    raise HelmError(f"no helm-run in {', '.join(where)}: {hint}, or set PREFBIAS_HELM_BIN / "
                    "config helm.python")


CLIENT_CLASS = "prefbias.evaluation.helm_client.RawLogitsHuggingFaceClient"
TOKENIZER_CLASS = "helm.tokenizers.huggingface_tokenizer.HuggingFaceTokenizer"
# Files that do not change what the model answers.
_IGNORED = {"prefbias_model.json", "README.md", ".gitattributes"}


def weights_hash(model_dir: str | Path, length: int = 12) -> str:
    """Content hash of a saved model directory (weights, config, tokenizer), order-independent
    of the file system; ``length`` hex digits."""
    root = Path(model_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {root} does not exist")
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _IGNORED
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise FileNotFoundError(f"model directory {root} is empty")
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:length]


def helm_model_name(name: str, model_dir: str | Path) -> str:
    """``local/<name>-<hash>``; HELM turns ``/`` into ``_`` in run directory names."""
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return f"local/{safe}-{weights_hash(model_dir)}"


def _model_info(model_dir: Path) -> dict[str, Any]:
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else {}
    max_len = int(cfg.get("max_position_embeddings") or 2048)
    eos = tok_cfg.get("eos_token") or "<|endoftext|>"
    if isinstance(eos, dict):
        eos = eos.get("content", "<|endoftext|>")
    bos = tok_cfg.get("bos_token") or ""
    if isinstance(bos, dict):
        bos = bos.get("content", "")
    return {"max_sequence_length": max_len, "eos": eos, "bos": bos,
            "model_type": cfg.get("model_type", "unknown")}


def write_prod_env(prod_env: str | Path, *, model_name: str, model_dir: str | Path,
                   apply_chat_template: bool, display_name: str | None = None,
                   max_sequence_length: int | None = None,
                   release_date: _dt.date | None = None) -> dict[str, Path]:
    """Write the three HELM config files for one local checkpoint into ``prod_env``.

    ``model_name`` is the full HELM name (``local/<name>-<hash>``, see :func:`helm_model_name`).
    Returns the written paths by file name.
    """
    env = Path(prod_env)
    env.mkdir(parents=True, exist_ok=True)
    mdir = Path(model_dir).resolve()
    info = _model_info(mdir)
    max_len = int(max_sequence_length or info["max_sequence_length"])
    deployments = {"model_deployments": [{
        "name": model_name,
        "model_name": model_name,
        "tokenizer_name": model_name,
        "max_sequence_length": max_len,
        "client_spec": {
            "class_name": CLIENT_CLASS,
            "args": {"pretrained_model_name_or_path": str(mdir),
                     "apply_chat_template": bool(apply_chat_template)},
        },
    }]}
    metadata = {"models": [{
        "name": model_name,
        "display_name": display_name or model_name.split("/", 1)[-1],
        "description": f"prefbias local checkpoint {mdir} ({info['model_type']})",
        "creator_organization_name": "prefbias",
        "access": "open",
        # A real YAML date (not a string): HELM's schema expects a date.
        "release_date": release_date or _dt.date(2025, 1, 1),
        "tags": ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"],
    }]}
    tokenizers = {"tokenizer_configs": [{
        "name": model_name,
        "tokenizer_spec": {"class_name": TOKENIZER_CLASS,
                           "args": {"pretrained_model_name_or_path": str(mdir)}},
        "end_of_text_token": info["eos"],
        "prefix_token": info["bos"],
    }]}
    out = {}
    for fname, obj in [("model_deployments.yaml", deployments),
                       ("model_metadata.yaml", metadata),
                       ("tokenizer_configs.yaml", tokenizers)]:
        with atomic_open(env / fname) as fh:
            yaml.safe_dump(obj, fh, sort_keys=False)
        out[fname] = env / fname
    return out
