"""The software-versions table of a run (as nf-core's ``software_versions.yml`` and its MultiQC
section): the versions of the key packages in every environment the pipeline used, the
training/evaluation environment (``.venv`` or the train image: the interpreter running this),
HELM's own environment (``.venv-helm``, asked through its own interpreter) and the container
images the config names (path, whether present, size and modification time; a ``.sif`` file is
not hashed here: MANIFEST.json's provenance pins images by path or digest).

Written as ``results/<run>/software_versions.yml`` and ``software_versions.html`` (shown in
Snakemake's report).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from prefbias.io import atomic_open
from prefbias.report.freeze import KEY_PACKAGES, package_versions

HELM_PACKAGES = ("crfm-helm", "torch", "transformers", "datasets", "pandas", "numpy")


def helm_versions(spec: dict[str, Any]) -> dict[str, str | None] | str:
    """Package versions in HELM's environment, read by its own Python; a sentence if none."""
    from prefbias.evaluation.helm_env import helm_bin_dir

    try:
        bindir = helm_bin_dir(spec)
    except Exception as e:  # noqa: BLE001 - no HELM environment is a fact to report
        return f"not found ({e})"
    python = Path(bindir) / "python"
    if not python.exists():
        return f"not found (no python in {bindir})"
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    try:
        proc = subprocess.run([str(python), "-c", code, *HELM_PACKAGES], capture_output=True,
                              text=True, timeout=120, check=True)
        return json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        return f"unreadable ({e})"


def _helm(spec: dict[str, Any]) -> dict[str, Any] | str:
    """HELM's versions from its environment; where this job cannot reach it (the train image
    on a cluster), the version the config pins (``helm.version``), said to be so."""
    got = helm_versions(spec)
    if isinstance(got, str) and spec.get("version"):
        return {"crfm-helm": f"{spec['version']} (config helm.version; its environment is "
                             f"{got})"}
    return got


def image_info(containers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, ref in (containers or {}).items():
        entry: dict[str, Any] = {"image": ref}
        p = Path(str(ref))
        if "://" in str(ref):
            entry["present"] = "remote (pinned by its URI)"
        elif p.is_file():
            st = p.stat()
            entry.update(present=True, size_bytes=st.st_size,
                         modified_utc=_dt.datetime.fromtimestamp(st.st_mtime, _dt.UTC)
                         .replace(microsecond=0).isoformat())
        else:
            entry["present"] = False
        out[name] = entry
    return out


def collect(config: dict[str, Any]) -> dict[str, Any]:
    import platform

    return {"train/eval environment (.venv or the train image)": {
                "python": platform.python_version(), **package_versions(KEY_PACKAGES)},
            "HELM environment (.venv-helm or the helm image)": _helm(config.get("helm") or {}),
            "container images (config containers)": image_info(config.get("containers", {}))}


def write(config: dict[str, Any], out_yml: str | Path, out_html: str | Path) -> dict[str, Any]:
    data = collect(config)
    with atomic_open(out_yml) as fh:
        fh.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    rows = []
    for env, pkgs in data.items():
        if isinstance(pkgs, str):
            rows.append((env, "", pkgs))
            continue
        for name, v in pkgs.items():
            if isinstance(v, dict):
                v = ", ".join(f"{k}: {x}" for k, x in v.items())
            rows.append((env, name, "not installed" if v is None else v))
    body = "".join(f"<tr><td>{html.escape(str(e))}</td><td>{html.escape(str(n))}</td>"
                   f"<td>{html.escape(str(v))}</td></tr>" for e, n, v in rows)
    with atomic_open(out_html) as fh:
        fh.write('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Software versions'
                 '</title><style>body{font-family:system-ui,sans-serif;margin:1.2em}table{'
                 'border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;'
                 'text-align:left}</style></head><body><h2>Software versions</h2><p>Run '
                 f'<code>{html.escape(str(config.get("run")))}</code>: the packages of every '
                 'environment the pipeline used (software_versions.yml beside this '
                 'report).</p><table><tr><th>environment</th><th>package</th><th>version</th>'
                 f'</tr>{body}</table></body></html>')
    return data
