"""Snakemake's HTML report of a run, written into ``results/<run>/report.html`` before the freeze.

Snakemake builds its report (rule graph, per-job runtimes, code, parameters, and every output
flagged ``report(...)``: the paper tables and figures, with their captions in ``report/``) from a
separate ``snakemake --report`` invocation. The ``snakemake_report`` rule runs that invocation as
a job of the DAG, so the report exists before ``freeze`` checksums the directory, and a frozen
``results/<run>/`` carries its own report whatever command produced it (``make demo``,
``snakemake --profile slurm``, one target).

The nested run sees exactly the configuration of the outer run: the resolved config is written to
a temporary YAML file that overlays ``config.yaml``. It reads only ``.snakemake/`` metadata, so it
runs with ``--nolock`` beside the outer Snakemake. The report appears atomically: Snakemake
writes a temporary ``.html`` next to the target, renamed into place only after a successful run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from prefbias.io import atomic_path

LANDING_ENV = "PREFBIAS_REPORT_LANDING"
_RST_INLINE = re.compile(r"([\\`*_|\[\]<>:])")  # inline markup; ':' stops URI links
_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.()+ -]*$")


def rst_text(text: Any) -> str:
    """Config text (a display name, a notice) as plain reStructuredText inside a line: line
    breaks and other control characters folded to single spaces (so it can never start a
    directive such as ``.. raw:: html`` on a line of its own) and the characters of inline
    markup (emphasis, literals, roles, links, substitutions, footnotes; ``:`` so that no
    ``javascript:`` text becomes a standalone link) backslash-escaped."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return _RST_INLINE.sub(r"\\\1", flat)


def rst_literal(text: Any) -> str:
    """``text`` as an inline literal when it is a plain name (a run, a model id, a commit);
    otherwise as escaped text (:func:`rst_text`)."""
    s = str(text)
    return f"``{s}``" if _SAFE_LITERAL.match(s) else rst_text(s)


def landing_page(config: dict[str, Any], repo: Path) -> str:
    """The report's landing page: which run, config and commit it shows, then
    ``report/workflow.rst`` (what the pipeline is)."""
    from prefbias.report.freeze import git_info

    git = git_info(repo)
    commit = git.get("commit") or "unknown (not a git checkout)"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    seeds = rst_text(", ".join(map(str, config.get("seeds", []))))
    lines = [f"**Run** {rst_literal(config.get('run', '?'))} · **commit** {rst_literal(commit)}"
             f" · **seeds** {seeds}. The resolved config is in "
             "``MANIFEST.json`` (key ``config``) beside this report.", ""]
    lines += provenance_lines(config) + [""]
    body = repo / "report" / "workflow.rst"
    return "\n".join(lines) + (body.read_text(encoding="utf-8") if body.is_file() else "")


def provenance_lines(config: dict[str, Any]) -> list[str]:
    """The landing page's account of what ran: a warning when random-weight or other stand-ins
    replace the papers' models (:func:`prefbias.plan.provenance_notice`), then every model the
    report's numbers rest on, named by what ran."""
    from prefbias import plan

    if not all(k in config for k in ("models", "sft", "orpo")):  # not a pipeline config
        return []
    models = plan.run_models(config)
    notice = plan.provenance_notice(config, plan.run_model_roles(config))
    out = [f".. warning:: {rst_text(notice)}", ""] if notice else []
    out.append("**Models** (config key: what ran): " + "; ".join(
        f"{rst_literal(m)}: {rst_text(plan.model_display(config, m))}" for m in models) + ".")
    return out + [""]


class ReportError(RuntimeError):
    """``snakemake --report`` failed."""


def report_command(*, snakefile: str | Path, configfile: str | Path, out: str | Path,
                   targets: Sequence[str], python: str = sys.executable) -> list[str]:
    """The ``snakemake --report`` command line (no profile: the report runs no jobs)."""
    return [python, "-m", "snakemake", "--snakefile", str(snakefile),
            "--configfile", str(configfile), "--report", str(out), "--nolock",
            "--workflow-profile", "none", "--", *targets]


def snakemake_report(out: str | Path, *, snakefile: str | Path, config: dict[str, Any],
                     targets: Sequence[str], cwd: str | Path = ".",
                     log: IO[str] | None = None, python: str = sys.executable) -> Path:
    """Write Snakemake's self-contained HTML report for ``targets`` to ``out`` (``.html``)."""
    out = Path(out)
    if out.suffix != ".html":
        raise ValueError(f"{out}: the report must be an .html file")
    if not targets:
        raise ValueError("no report targets given")
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    with tempfile.TemporaryDirectory(prefix="prefbias-report-") as td:
        configfile = Path(td) / "resolved-config.yaml"
        configfile.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        landing = Path(td) / "workflow.rst"
        landing.write_text(landing_page(config, Path(snakefile).resolve().parent),
                           encoding="utf-8")
        env[LANDING_ENV] = str(landing)  # the Snakefile's `report:` directive reads it
        with atomic_path(out) as tmp:
            html = tmp.with_name(tmp.name + ".html")  # Snakemake picks the format by suffix
            cmd = report_command(snakefile=Path(snakefile).resolve(), configfile=configfile,
                                 out=html.resolve(), targets=targets, python=python)
            try:
                proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=log or sys.stderr, stderr=subprocess.STDOUT,
                                      check=False)
                if proc.returncode != 0 or not html.is_file():
                    raise ReportError(f"snakemake --report exited with {proc.returncode}; "
                                      f"no report written to {out}")
                os.replace(html, tmp)
            finally:
                html.unlink(missing_ok=True)
    return out
