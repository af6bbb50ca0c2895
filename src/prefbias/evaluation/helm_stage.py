"""Stage HELM's scenario data on the login node, for ``helm_run`` jobs on offline compute nodes.

crfm-helm 0.5.16 downloads each scenario's data when a run starts: ``Scenario.get_instances``
calls ``helm.common.general.ensure_file_downloaded`` (urllib/wget) into
``<output>/scenarios/<name>/``, and the fairness perturbations download their word lists in
``__init__`` (``DialectPerturbation`` -> ``perturbations/dialect/``, ``PersonNamePerturbation``
-> ``perturbations/person_name/data/``). ``ensure_file_downloaded`` skips any target that
exists. So staging runs HELM's *own* code for every configured run entry — build the run spec
(without a model), create the scenario, ``get_instances``, create each perturbation of the
``data_augmentation`` — in HELM's environment, on a node with internet (the ``helm_stage``
localrule), and the jobs get the result as ``--fixtures`` (copied into their
``benchmark_output/``, where every download is then skipped). NLTK's ``punkt_tab`` is staged too
when HELM's environment cannot find it.

Layout of the staged directory (the same as ``tests/fixtures/helm``)::

    scenarios/<name>/...     perturbations/<name>/...     nltk_data/ (if downloaded)
    staged.json              run entries, instance counts, files (no .lock files)

With ``fixtures`` the fixture files are laid down first; HELM then reads them (and parses every
instance) without any download: the offline test of this module does exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefbias.plan import scenario_entries

WORKER = "prefbias.evaluation.helm_stage"
MANIFEST = "staged.json"




def stage_entries(spec: dict[str, Any], scenarios: list[str] | None = None) -> list[str]:
    """Model-less HELM run entries of the configured scenarios."""
    return [e for scen in scenarios or list(spec["scenarios"])
            for e in scenario_entries(spec, scen)]


def stage(spec: dict[str, Any], out: str | Path, *, fixtures: str | Path | None = None,
          scenarios: list[str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Run HELM's downloaders for ``spec['scenarios']`` into ``out`` (created atomically: a
    temporary sibling renamed at the end). Returns the manifest."""
    from prefbias.evaluation.helm_env import HelmError, helm_bin_dir

    out = Path(out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} exists: remove it to stage again")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    bo = tmp / "benchmark_output"
    bo.mkdir(parents=True)
    if fixtures:
        fx = Path(fixtures)
        for sub in ("scenarios", "perturbations"):
            if (fx / sub).is_dir():
                shutil.copytree(fx / sub, bo / sub, dirs_exist_ok=True)
        if (fx / "nltk_data").is_dir():
            shutil.copytree(fx / "nltk_data", tmp / "nltk_data")
    entries = stage_entries(spec, scenarios)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if (tmp / "nltk_data").is_dir():
        env["NLTK_DATA"] = str(tmp / "nltk_data")
    python = helm_bin_dir(spec) / "python"
    cmd = [str(python), "-m", WORKER, "--nltk-dir", str(tmp / "nltk_data"), *entries]
    log = tmp / "helm-stage.log"
    with open(log, "w", encoding="utf-8") as fh:
        try:
            rc = subprocess.run(cmd, cwd=tmp, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout_s, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    if rc != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise HelmError(f"staging HELM data failed (exit {rc}); log: {log}\n{tail}")
    manifest = json.loads((tmp / MANIFEST).read_text())
    for lock in bo.rglob("*.lock"):
        lock.unlink()
    for sub in ("scenarios", "perturbations"):
        if (bo / sub).is_dir():
            (bo / sub).rename(tmp / sub)
    shutil.rmtree(bo)
    files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest["files"] = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.rename(out)
    return manifest


# --------------------------------------------------------------------------------------------
# Worker: runs inside HELM's environment (helm.sif or .venv-helm), cwd = the staging directory.

def _run_specs(entry: str):
    """HELM's ``construct_run_specs`` minus the model expander (there is no model here)."""
    from helm.benchmark.run_expander import RUN_EXPANDERS
    from helm.benchmark.run_spec_factory import get_run_spec_function
    from helm.common.object_spec import parse_object_spec

    spec = parse_object_spec(entry)
    fn = get_run_spec_function(spec.class_name)
    if fn is None:
        raise ValueError(f"HELM has no run spec {spec.class_name!r} (entry {entry!r})")
    expanders = [RUN_EXPANDERS[k](v) for k, v in spec.args.items()
                 if k in RUN_EXPANDERS and k != "model"]
    run_specs = [fn(**{k: v for k, v in spec.args.items() if k not in RUN_EXPANDERS})]
    for ex in expanders:
        run_specs = [child for parent in run_specs for child in ex.expand(parent)]
    return run_specs


def worker(entries: list[str], nltk_dir: str) -> dict[str, Any]:
    from helm.benchmark.augmentations.perturbation import create_perturbation
    from helm.benchmark.scenarios.scenario import create_scenario, get_scenario_cache_path

    output = "benchmark_output"  # the perturbations' OUTPUT_PATH default, relative to cwd
    staged: dict[str, Any] = {"entries": {}}
    for entry in entries:
        for rs in _run_specs(entry):
            scenario = create_scenario(rs.scenario_spec)
            instances = scenario.get_instances(get_scenario_cache_path(output, scenario.name))
            if not instances:
                raise ValueError(f"HELM scenario {scenario.name} ({entry}) has no instances")
            perts = []
            if rs.data_augmenter_spec is not None:
                for ps in rs.data_augmenter_spec.perturbation_specs:
                    create_perturbation(ps)  # downloads its word lists
                    perts.append(ps.class_name.rsplit(".", 1)[-1])
            staged["entries"][entry] = {"run_spec": rs.name, "scenario": scenario.name,
                                        "instances": len(instances), "perturbations": perts}
            print(f"staged {entry}: {len(instances)} instances, perturbations {perts}",
                  flush=True)
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        staged["nltk_punkt_tab"] = "found"
    except LookupError:
        if not nltk.download("punkt_tab", download_dir=nltk_dir, quiet=True, raise_on_error=True):
            raise RuntimeError("nltk could not download punkt_tab") from None
        staged["nltk_punkt_tab"] = "downloaded"
    return staged


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog=WORKER)
    p.add_argument("--nltk-dir", required=True)
    p.add_argument("entries", nargs="+")
    a = p.parse_args(argv)
    staged = worker(a.entries, a.nltk_dir)
    Path(MANIFEST).write_text(json.dumps(staged, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
