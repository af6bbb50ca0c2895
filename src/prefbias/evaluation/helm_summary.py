"""Read crfm-helm 0.5.16 run outputs and build the paper's HELM tables (stylized-dpo Tables 4-8).

Per run (``runs/<suite>/<run>/stats.json``) the four numbers of a (model, scenario) cell:

* accuracy: the scenario's main metric, unperturbed, on its main split;
* calibration: ``ece_10_bin`` (unperturbed); HellaSwag's ``multiple_choice_separate_original``
  never gets it in 0.5.16, so it is computed from ``per_instance_stats.json`` (``max_prob``,
  ``exact_match``) with :func:`get_ece_em` (helm-offline.md fix 4);
* robustness / fairness: the main metric with ``perturbation.name`` robustness / fairness and
  ``computed_on: worst``; a run without any perturbation (no ``data_augmentation``: the paper's
  protocol for MMLU and HellaSwag, the default) has the accuracy there, the worst case over the
  original alone, as the paper's Tables 7-8 show.

Per instance (:func:`read_instances`, kept in each stats file): the values behind those four
numbers, from which :func:`group_ci` draws a bootstrap CI over instances (stratified by run, as
MMLU averages one run per subject): accuracy = the main metric, unperturbed; robustness /
fairness = its minimum over the original and every robustness / fairness perturbation of the
instance (HELM's ``computed_on: worst``); calibration = the ECE of resampled ``(max_prob,
exact_match)`` pairs. Train trials are averaged per instance, as HELM averages per-trial stats.

Group tables: one row per model (paper order), a mean win rate over the five scenarios
(:mod:`prefbias.evaluation.winrate`; calibration lower-is-better).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefbias.plan import HELM_GROUPS, HELM_SCENARIOS

SCENARIOS = list(HELM_SCENARIOS)  # the paper's column order (prefbias.plan: defined once)
MAIN_METRIC = {"boolq": "quasi_exact_match", "mmlu": "exact_match", "hellaswag": "exact_match",
               "natural_qa": "f1_score", "quac": "f1_score"}
MAIN_SPLIT = {"boolq": "valid", "mmlu": "test", "hellaswag": "valid", "natural_qa": "valid",
              "quac": "valid"}
GROUPS = list(HELM_GROUPS)
LOWER_IS_BETTER = {"calibration"}


# --------------------------------------------------------------------------------------------
# ECE exactly as uncertainty-calibration 0.1.4 ``calibration.get_ece_em`` (used by HELM):
# equal-mass bins, plug-in L1 calibration error.
# --------------------------------------------------------------------------------------------
def _equal_mass_bins(probs: Sequence[float], num_bins: int) -> list[float]:
    import numpy as np

    sorted_probs = sorted(probs)
    num_bins = min(num_bins, len(sorted_probs))
    parts = [list(p) for p in np.array_split(sorted_probs, num_bins)]
    bins = [(parts[i][-1] + parts[i + 1][0]) / 2.0 for i in range(len(parts) - 1)]
    bins.append(1.0)
    return sorted(set(bins))


def get_ece_em(probs: Sequence[float], correct: Sequence[int], num_bins: int = 10) -> float:
    """Expected calibration error with ``min(num_bins, n)`` equal-mass bins:
    ``sum_b n_b/n * |mean(conf_b) - mean(correct_b)|``."""
    import numpy as np

    if len(probs) != len(correct) or not probs:
        raise ValueError("need equally many (and at least one) probabilities and labels")
    data = np.array(list(zip(probs, correct, strict=True)), dtype=float)
    bins = _equal_mass_bins(list(probs), num_bins)
    idx = np.searchsorted(bins, data[:, 0])
    order = np.argsort(idx, kind="stable")
    splits = np.searchsorted(idx[order], list(range(1, len(bins))))
    binned = np.split(data[order], splits)
    n = len(data)
    return float(sum(len(b) / n * abs(float(np.mean(b[:, 0] - b[:, 1])))
                     for b in binned if len(b)))


# --------------------------------------------------------------------------------------------
# One HELM run directory
# --------------------------------------------------------------------------------------------
def _stat_mean(stat: dict[str, Any]) -> float | None:
    if stat.get("mean") is not None:
        return float(stat["mean"])
    if stat.get("count"):
        return float(stat["sum"]) / float(stat["count"])
    return None


def find_stat(stats: list[dict[str, Any]], name: str, split: str, *,
              perturbation: str | None = None) -> float | None:
    """Mean of the stat ``name`` on ``split``; unperturbed, or with ``perturbation.name`` and
    ``computed_on: worst``. Sub-splits are ignored."""
    for s in stats:
        mn = s["name"]
        if mn.get("name") != name or mn.get("split") != split or mn.get("sub_split"):
            continue
        pert = mn.get("perturbation")
        if perturbation is None and pert is None:
            return _stat_mean(s)
        if (perturbation is not None and pert is not None and pert.get("name") == perturbation
                and pert.get("computed_on") == "worst"):
            return _stat_mean(s)
    return None


def read_run(run_dir: str | Path, scenario: str, *,
             with_instances: bool = False) -> dict[str, Any]:
    """The four group values of one HELM run directory; with ``with_instances`` also
    ``instances``, the per-instance values behind them (:func:`instance_values`, None without
    ``per_instance_stats.json``). That file is read once, and only when needed: for the
    instances, or for an ``ece_10_bin`` HELM did not compute (HellaSwag, fix 4)."""
    run_dir = Path(run_dir)
    stats = json.loads((run_dir / "stats.json").read_text())
    metric, split = MAIN_METRIC[scenario], MAIN_SPLIT[scenario]
    out: dict[str, Any] = {
        "accuracy": find_stat(stats, metric, split),
        "calibration": find_stat(stats, "ece_10_bin", split),
        "robustness": find_stat(stats, metric, split, perturbation="robustness"),
        "fairness": find_stat(stats, metric, split, perturbation="fairness"),
    }
    if not any(s["name"].get("perturbation") for s in stats):
        # an unperturbed run (no data_augmentation: the paper's MMLU and HellaSwag): the worst
        # case over the original alone is the original, as in the paper's Tables 7-8
        for g in ("robustness", "fairness"):
            if out[g] is None:
                out[g] = out["accuracy"]
    out["calibration_source"] = "helm" if out["calibration"] is not None else None
    inst = (read_instances(run_dir, scenario)
            if with_instances or out["calibration"] is None else None)
    if out["calibration"] is None and inst and inst["calibration"]:
        out["calibration"] = _ece_of(list(inst["calibration"].values()))
        out["calibration_source"] = "per_instance_stats"
    if with_instances:
        out["instances"] = inst
    return out


def _instance_stat(row: dict[str, Any], name: str, split: str) -> float | None:
    for s in row["stats"]:
        mn = s["name"]
        if mn.get("name") == name and mn.get("split") == split and not mn.get("sub_split"):
            return _stat_mean(s)
    return None


def instance_values(per_instance: list[dict[str, Any]], scenario: str) -> dict[str, Any]:
    """``{"accuracy"|"robustness"|"fairness": {instance_id: value}, "calibration": {instance_id:
    [[max_prob, exact_match], ... one per train trial]}}`` from ``per_instance_stats.json``."""
    metric, split = MAIN_METRIC[scenario], MAIN_SPLIT[scenario]
    orig: dict[tuple[str, int], float] = {}
    worst: dict[str, dict[tuple[str, int], float]] = {"robustness": {}, "fairness": {}}
    calib: dict[str, list[list[float]]] = {}
    for row in per_instance:
        key = (str(row["instance_id"]), int(row.get("train_trial_index", 0)))
        value = _instance_stat(row, metric, split)
        pert = row.get("perturbation")
        if not pert:  # ECE: confidence max_prob, correctness strict exact_match (helm-offline.md)
            prob = _instance_stat(row, "max_prob", split)
            em = _instance_stat(row, "exact_match", split)
            if prob is not None and em is not None:
                calib.setdefault(key[0], []).append([prob, em])
        if value is None:
            continue
        if not pert:
            orig[key] = value
            continue
        for kind, table in worst.items():
            if pert.get(kind):
                table[key] = min(table.get(key, value), value)

    def per_instance_mean(values: dict[tuple[str, int], float]) -> dict[str, float]:
        trials: dict[str, list[float]] = {}
        for (iid, _), v in values.items():
            trials.setdefault(iid, []).append(v)
        return {iid: sum(vs) / len(vs) for iid, vs in sorted(trials.items())}

    out: dict[str, Any] = {"accuracy": per_instance_mean(orig)}
    for kind, table in worst.items():
        # the worst case includes the original: an instance no perturbation touched keeps it
        out[kind] = per_instance_mean({k: min(v, table.get(k, v)) for k, v in orig.items()})
    out["calibration"] = dict(sorted(calib.items()))
    return out


def read_instances(run_dir: str | Path, scenario: str) -> dict[str, Any] | None:
    """:func:`instance_values` of a HELM run directory (None without per_instance_stats.json)."""
    path = Path(run_dir) / "per_instance_stats.json"
    if not path.exists():
        return None
    return instance_values(json.loads(path.read_text()), scenario)


def _ece_of(pairs_by_instance: Sequence[list[list[float]]], num_bins: int = 10) -> float:
    """``ece_10_bin`` as HELM computes it: per train trial over the given instances (resampled
    ones repeat), then the mean over trials."""
    n_trials = max(len(p) for p in pairs_by_instance)
    eces = []
    for t in range(n_trials):
        pairs = [p[t] for p in pairs_by_instance if len(p) > t]
        eces.append(get_ece_em([a for a, _ in pairs], [int(b) for _, b in pairs], num_bins))
    return sum(eces) / len(eces)


def group_ci(instances: Sequence[dict[str, Any]], group: str, *, n: int = 1000, seed: int = 0,
             ci: float = 0.95) -> tuple[float | None, float | None]:
    """Bootstrap CI of one group's value over instances, stratified by run: each replicate
    resamples the instances of every run and averages the runs' values (MMLU: the subjects)."""
    from prefbias.evaluation.stats import stratified_bootstrap_ci

    strata = [list(run[group].values()) for run in instances if run and run.get(group)]
    stat = _ece_of if group == "calibration" else None
    return stratified_bootstrap_ci(strata, stat=stat, n=n, seed=seed, ci=ci)


def mean_over_runs(values: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Average each group over runs (MMLU: one run per subject), ignoring missing values."""
    out: dict[str, float | None] = {}
    for g in GROUPS:
        vals = [v[g] for v in values if v.get(g) is not None and not math.isnan(v[g])]
        out[g] = sum(vals) / len(vals) if vals else None
    return out


# --------------------------------------------------------------------------------------------
# Group tables
# --------------------------------------------------------------------------------------------
def group_tables(cells: dict[str, dict[str, dict[str, float | None]]],
                 rows: list[tuple[str, str]]):
    """``cells[model][scenario] -> {group: value, <group>_ci_low/_ci_high: bound}`` and
    ``rows = [(model, label), ...]`` -> ``{group: DataFrame}`` (columns model, label,
    mean_win_rate, <scenarios>, <scenario>_ci_low/_ci_high) and the Table 4 summary DataFrame
    (model, label, <groups>)."""
    import pandas as pd

    from prefbias.evaluation.winrate import mean_win_rates

    tables = {}
    ci_cols = [f"{s}_ci_{b}" for s in SCENARIOS for b in ("low", "high")]
    for g in GROUPS:
        table = {m: {s: cells.get(m, {}).get(s, {}).get(g) for s in SCENARIOS} for m, _ in rows}
        cis = {m: {f"{s}_ci_{b}": cells.get(m, {}).get(s, {}).get(f"{g}_ci_{b}")
                   for s in SCENARIOS for b in ("low", "high")} for m, _ in rows}
        rates = mean_win_rates(table, SCENARIOS, lower_is_better=g in LOWER_IS_BETTER)
        tables[g] = pd.DataFrame([{"model": m, "label": label, "mean_win_rate": rates[m],
                                   **table[m], **cis[m]} for m, label in rows],
                                 columns=["model", "label", "mean_win_rate", *SCENARIOS,
                                          *ci_cols])
    summary = pd.DataFrame([{"model": m, "label": label,
                             **{g: tables[g].set_index("model").at[m, "mean_win_rate"]
                                for g in GROUPS}} for m, label in rows],
                           columns=["model", "label", *GROUPS])
    return tables, summary


def summary_rows(config: dict[str, Any], seeds: Sequence[int]) -> list[tuple[str, str, list[str]]]:
    """``[(label, model column, [model ids, one per seed])]`` in the paper's row order."""
    from prefbias.plan import stylized_models

    per_seed = [stylized_models(config, seed) for seed in seeds]
    rows = []
    for i, first in enumerate(per_seed[0]):
        ids = list(dict.fromkeys(specs[i].id for specs in per_seed))
        rows.append((first.label, "+".join(ids), ids))
    return rows


def _mean_present(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def seed_cell(stats: Sequence[dict[str, Any]], boot: dict[str, Any]) -> dict[str, float | None]:
    """One (row, scenario) cell from the stats files of its seeds: each group's mean over seeds
    and its bootstrap CI over instances (per seed; several seeds: the mean of the bounds)."""
    cell: dict[str, float | None] = {}
    for g in GROUPS:
        cell[g] = _mean_present([v.get(g) for v in stats])
        bounds = [group_ci([r.get("instances") for r in v.get("runs", {}).values()], g, **boot)
                  for v in stats]
        cell[f"{g}_ci_low"] = _mean_present([b[0] for b in bounds])
        cell[f"{g}_ci_high"] = _mean_present([b[1] for b in bounds])
    return cell


def summarize(stats_dir: str | Path, config: dict[str, Any], outdir: str | Path,
              seeds: Sequence[int] | None = None, *, allow_missing: bool = False) -> int:
    """Write ``<outdir>/<group>.csv`` (Tables 5-8) and ``summary.csv`` (Table 4) from the
    per-run stats JSONs ``<stats_dir>/<model>/<scenario>.json`` of every seed; ``config`` holds
    the sections of :func:`prefbias.plan.stylized_models` and ``report.bootstrap``. Returns the
    number of rows."""
    from prefbias.evaluation.stats import bootstrap_args
    from prefbias.io import DataError, atomic_open, read_json

    boot = bootstrap_args(config["report"]["bootstrap"])
    rows = summary_rows(config, seeds or config["seeds"])
    cells: dict[str, dict[str, dict[str, float | None]]] = {}
    for _label, key, ids in rows:
        for scen in SCENARIOS:
            stats = []
            for mid in ids:
                path = Path(stats_dir) / mid / f"{scen}.json"
                if path.exists():
                    stats.append(read_json(path))
                elif not allow_missing:
                    raise DataError(path, "HELM stats file missing (run helm-run first)")
            cells.setdefault(key, {})[scen] = seed_cell(stats, boot)
    tables, summary = group_tables(cells, [(key, label) for label, key, _ in rows])
    out = Path(outdir)
    for name, df in [*tables.items(), ("summary", summary)]:
        with atomic_open(out / f"{name}.csv") as fh:
            df.to_csv(fh, index=False, float_format="%.6g")
    return len(rows)
