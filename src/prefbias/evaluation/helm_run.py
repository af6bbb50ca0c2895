"""Run crfm-helm 0.5.16 on one local checkpoint and one or more paper scenarios
(stylized-dpo §5.1.2).

HELM lives in its own environment (``.venv-helm``; HELM pins datasets/spacy/nltk) and is called
as a subprocess. Config ``helm.jobs`` picks the grain: ``per_scenario`` (one helm-run, and one
cluster job, per model and scenario) or ``per_model`` (one helm-run with every scenario's run
entries: one model load and one start-up per model, for small local runs). Both write the same
per-scenario stats files. Layout of ``outdir`` (``work/<run>/helm/<model>/<scenario or
all>/``)::

    prod_env/                 model_deployments.yaml, model_metadata.yaml, tokenizer_configs.yaml
                              (+ HELM's answer cache, keyed by the hash-bearing model name)
    benchmark_output/         helm-run -o: scenarios/ (data), perturbations/, runs/<suite>/<run>/
    helm-run.log              HELM's own log

helm-run runs with ``outdir`` as its working directory: the perturbations resolve their data
directory from the *default* output path at import time, so both must be the same folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefbias.evaluation.helm_env import (  # noqa: F401 - HelmError, helm_bin_dir re-exported
    HelmError,
    helm_bin_dir,
    helm_model_name,
    installed_version,
    weights_hash,
    write_prod_env,
)
from prefbias.evaluation.helm_summary import SCENARIOS, mean_over_runs, read_run
from prefbias.io import write_json
from prefbias.plan import scenario_entries

log = logging.getLogger(__name__)

SUITE = "prefbias"
PLUGIN = "prefbias.evaluation.helm_client"
# HELM 0.5.16's max_tokens per run spec; config helm.num_output_tokens only ever lowers it.
DEFAULT_MAX_TOKENS = {"boolq": 5, "mmlu": 1, "natural_qa": 300, "quac": 100, "hellaswag": 0}
# Which fixture folders each scenario needs under benchmark_output/.
FIXTURE_DIRS = {"boolq": ["scenarios/boolq"], "mmlu": ["scenarios/mmlu"],
                "natural_qa": ["scenarios/natural_qa"], "quac": ["scenarios/quac"],
                "hellaswag": ["scenarios/hellaswag"]}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def run_entries(spec: dict[str, Any], scenario: str, model: str) -> list[str]:
    """HELM run entries for ``scenario`` (MMLU: one per subject in ``helm.mmlu_subjects``)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown HELM scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    entries = scenario_entries(spec, scenario)
    extra = f"model={model}"
    cap = spec.get("num_output_tokens")
    if cap is not None and int(cap) < DEFAULT_MAX_TOKENS[scenario]:
        extra += f",num_output_tokens={int(cap)}"
    return [f"{e}{',' if ':' in e else ':'}{extra}" for e in entries]


def run_function(spec: dict[str, Any], scenario: str) -> str:
    """The HELM run-spec function a scenario's template calls (``commonsense`` for hellaswag):
    the first token of every run directory name HELM makes for it."""
    return spec["scenarios"][scenario].split(":", 1)[0]


def check_separable(spec: dict[str, Any], scenarios: list[str]) -> None:
    """Scenarios run together must be told apart by their run directories' names."""
    seen: dict[str, str] = {}
    for scen in scenarios:
        fn = run_function(spec, scen)
        if fn in seen:
            raise HelmError(f"HELM scenarios {seen[fn]!r} and {scen!r} both call run spec "
                            f"{fn!r}, so one helm-run cannot tell their runs apart: run them "
                            "as separate jobs (config helm.jobs: per_scenario)")
        seen[fn] = scen


def runs_by_scenario(spec: dict[str, Any], scenarios: list[str],
                     runs: list[Path]) -> dict[str, list[Path]]:
    """Assign each HELM run directory (``boolq,data_augmentation=...:model=...``,
    ``mmlu:subject=...``) to the scenario whose run-spec function names it."""
    by_fn = {run_function(spec, s): s for s in scenarios}
    out: dict[str, list[Path]] = {s: [] for s in scenarios}
    for run in runs:
        fn = re.split(r"[:,]", run.name, maxsplit=1)[0]
        if fn not in by_fn:
            raise HelmError(f"HELM run {run} belongs to none of {', '.join(scenarios)}")
        out[by_fn[fn]].append(run)
    return out


def place_fixtures(fixtures: str | Path, output_path: Path, scenario: str) -> None:
    """Copy the scenario's data and the perturbation files into HELM's output directory (HELM
    skips downloads whose target exists and writes ``.lock`` files beside them)."""
    fixtures = Path(fixtures)
    for rel in FIXTURE_DIRS[scenario] + ["perturbations"]:
        src = fixtures / rel
        if not src.is_dir():
            raise FileNotFoundError(f"HELM fixture folder {src} does not exist")
        shutil.copytree(src, output_path / rel, dirs_exist_ok=True)


def helm_environment(spec: dict[str, Any], fixtures: str | Path | None) -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the client plugin imports in any env
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # fixtures/staged data may ship NLTK's punkt_tab; else the image's NLTK_DATA (helm.def)
    shipped = Path(fixtures) / "nltk_data" if fixtures else None
    nltk = spec.get("nltk_data") or (shipped if shipped and shipped.is_dir() else None)
    if nltk:
        env["NLTK_DATA"] = str(Path(nltk).resolve())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["HF_HUB_OFFLINE"] = "1"  # checkpoints and tokenizers are local directories
    return env


def _run_helm(cmd: list[str], *, env: dict[str, str], cwd: Path, out) -> int:
    """``helm-run`` as a subprocess, its output appended to ``out`` (the HELM log)."""
    return subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                          check=False).returncode


def find_runs(output_path: Path) -> list[Path]:
    runs = output_path / "runs" / SUITE
    return sorted(p.parent for p in runs.glob("*/stats.json"))


def helm_run(*, model_dir: str | Path, model_name: str, scenario: str | list[str],
             spec: dict[str, Any], outdir: str | Path,
             stats_path: str | Path | list[str | Path] | None = None,
             fixtures: str | Path | None = None, disable_cache: bool = False,
             threads: int = 1) -> dict[str, Any]:
    """Run HELM for one model on one scenario, or on several in a single helm-run (a list, with
    a parallel list of ``stats_path``); write and return the stats dict ``{accuracy,
    calibration, robustness, fairness, ...provenance}`` (for a list: ``{scenario: stats}``)."""
    scenarios = [scenario] if isinstance(scenario, str) else list(scenario)
    if stats_path is None:
        paths: list[str | Path | None] = [None] * len(scenarios)
    else:
        paths = [stats_path] if isinstance(stats_path, (str, Path)) else list(stats_path)
    if not scenarios or len(paths) != len(scenarios):
        raise ValueError(f"{len(scenarios)} scenario(s) but {len(paths)} stats path(s)")
    check_separable(spec, scenarios)
    model_dir = Path(model_dir).resolve()
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    output_path = outdir / "benchmark_output"
    prod_env = outdir / "prod_env"
    helm_name = helm_model_name(model_name, model_dir)
    write_prod_env(prod_env, model_name=helm_name, model_dir=model_dir,
                   apply_chat_template=bool(spec["apply_chat_template"]),
                   display_name=model_name)
    # Old run directories (an earlier checkpoint, other entries) must not be read back.
    shutil.rmtree(output_path / "runs" / SUITE, ignore_errors=True)
    output_path.mkdir(parents=True, exist_ok=True)
    if fixtures:
        for scen in scenarios:
            place_fixtures(fixtures, output_path, scen)

    entries = {scen: run_entries(spec, scen, helm_name) for scen in scenarios}
    all_entries = [e for scen in scenarios for e in entries[scen]]
    bin_dir = helm_bin_dir(spec)
    cmd = [str(bin_dir / "helm-run"), "--run-entries", *all_entries,
           "--suite", SUITE, "-o", "benchmark_output", "--local-path", str(prod_env),
           "--max-eval-instances", str(int(spec["max_eval_instances"])),
           "--num-threads", str(threads), "--plugins", PLUGIN, "--exit-on-error"]
    if disable_cache:
        cmd.append("--disable-cache")
    log.info("helm-run %s on %s (%s): %d run entries", ", ".join(scenarios), model_name,
             helm_name, len(all_entries))
    log.debug("command: %s", " ".join(cmd))
    t0 = time.monotonic()
    logfile = outdir / "helm-run.log"
    env = helm_environment(spec, fixtures)
    with open(logfile, "w", encoding="utf-8") as fh:
        returncode = _run_helm(cmd, env=env, cwd=outdir, out=fh)
    wall = time.monotonic() - t0
    if returncode != 0:
        tail = logfile.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        sys.stderr.write("\n".join(tail) + "\n")
        raise HelmError(f"helm-run failed (exit {returncode}); log: {logfile}")

    runs = runs_by_scenario(spec, scenarios, find_runs(output_path))
    ran = installed_version(bin_dir)
    if spec.get("version") and ran and ran != str(spec["version"]):
        log.warning("crfm-helm %s ran, the config names %s", ran, spec["version"])
    spec = {**spec, "version_ran": ran}
    whash = weights_hash(model_dir)
    results = {}
    for scen, path in zip(scenarios, paths, strict=True):
        if len(runs[scen]) != len(entries[scen]):
            raise HelmError(f"expected {len(entries[scen])} HELM run(s) of {scen} under "
                            f"{output_path}/runs/{SUITE}, found {len(runs[scen])}; "
                            f"log: {logfile}")
        results[scen] = scenario_stats(
            {p.name: read_run(p, scen, with_instances=True) for p in runs[scen]},
            model_name=model_name,
            scenario=scen, helm_name=helm_name, weights=whash, spec=spec,
            entries=entries[scen], wall=wall, together=scenarios)
        if path:
            write_json(path, results[scen])
    return results[scenario] if isinstance(scenario, str) else results


def scenario_stats(per_run: dict[str, dict], *, model_name: str, scenario: str, helm_name: str,
                   weights: str, spec: dict[str, Any], entries: list[str], wall: float,
                   together: list[str]) -> dict[str, Any]:
    """One scenario's stats file: the group means over its runs plus provenance. ``wall_s`` is
    the helm-run's wall time, shared by ``helm_invocation`` (the scenarios run with it)."""
    result: dict[str, Any] = mean_over_runs(list(per_run.values()))
    result.update({
        "model": model_name,
        "scenario": scenario,
        "helm_model": helm_name,
        "weights_hash": weights,
        "helm_version": spec.get("version_ran") or spec.get("version"),  # what ran
        "helm_version_configured": spec.get("version"),
        "run_entries": entries,
        "max_eval_instances": int(spec["max_eval_instances"]),
        "apply_chat_template": bool(spec["apply_chat_template"]),
        "runs": per_run,
        "wall_s": round(wall, 2),
        "helm_invocation": together,
    })
    missing = [g for g in ("accuracy", "calibration", "robustness", "fairness")
               if result[g] is None]
    if missing:
        log.warning("%s/%s: no value for %s", model_name, scenario, ", ".join(missing))
    log.info("%s/%s: accuracy=%s calibration=%s robustness=%s fairness=%s (%.1f s)", model_name,
             scenario, *(json.dumps(result[g]) for g in ("accuracy", "calibration",
                                                         "robustness", "fairness")), wall)
    return result
