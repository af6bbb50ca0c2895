"""Reward win rates beyond "vs base" (stylized-dpo §3.3.1: SFT vs. base, DPO vs. SFT):
config ``reward_winrate.pairs`` -> resolved pairs per seed -> ``table3_pairs`` (+ _vs_paper).
Every expected value below is worked out by hand from the inputs written here."""

from __future__ import annotations

import copy
import json
import math

import pandas as pd
import pytest

from prefbias import plan, rule_table
from prefbias.cli import main
from prefbias.config import sections_json, validate_config
from prefbias.io import DataError
from prefbias.report import compare, tables


@pytest.fixture()
def cfg(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["seeds"] = [0, 1]
    c["report"]["skip_random_stand_in_evals"] = False  # the stand-ins scored (the demo skips them)
    c["reward_winrate"]["pairs"] = [["ultrafeedback", "sft"], ["sft", "base"],
                                    ["sycophantic", "ultrafeedback"],
                                    ["sft", "qwen2.5-0.5b"]]  # = [sft, base]: de-duplicated
    return c


def test_paper_config_pairs_dpo_vs_sft(paper_config):
    got = [(p["id"], p["baseline"]) for p in plan.resolve_pairs(paper_config)]
    assert got == [("dpo-ultrafeedback-s0", "sft-s0"), ("dpo-sycophantic-s0", "sft-s0"),
                   ("dpo-authoritative-s0", "sft-s0"), ("dpo-persuasive-s0", "sft-s0")]


def test_resolve_pairs_per_seed(cfg):
    got = plan.resolve_pairs(cfg)
    assert [(p["id"], p["baseline"], p["seed"]) for p in got] == [
        ("dpo-ultrafeedback-s0", "sft-s0", 0), ("sft-s0", "qwen2.5-0.5b", 0),
        ("dpo-sycophantic-s0", "dpo-ultrafeedback-s0", 0),
        ("dpo-ultrafeedback-s1", "sft-s1", 1), ("sft-s1", "qwen2.5-0.5b", 1),
        ("dpo-sycophantic-s1", "dpo-ultrafeedback-s1", 1)]
    assert got[0]["label"] == "Ultrafeedback" and got[0]["baseline_label"] == "SFT"
    assert got[1]["baseline_label"] == "Qwen 2.5 0.5B"
    assert got[2]["label"] == "Ultrafeedback sycophantic"
    rows = plan.reward_pair_rows(cfg)
    # against Table 3's baseline: Table 3's own file (scored once); else eval/reward_vs/
    assert [r["file"] for r in rows[:3]] == [
        "eval/reward_vs/sft-s0/dpo-ultrafeedback-s0.json", "eval/reward/sft-s0.json",
        "eval/reward_vs/dpo-ultrafeedback-s0/dpo-sycophantic-s0.json"]


@pytest.mark.parametrize("pairs, match", [
    ([["sft", "nosuch"]], r"reward_winrate.pairs\[0\]'.*unknown model 'nosuch'"),
    ([["ultrafeedback", "sft"], ["sft", "sft"]], r"pairs\[1\]'.*paired with itself"),
    ([["sft"]], r"pairs\[0\]'.*expected \[model, baseline\]"),
])
def test_bad_pairs_name_the_key(cfg, pairs, match):
    cfg["reward_winrate"]["pairs"] = pairs
    with pytest.raises(ValueError, match=match):
        plan.resolve_pairs(cfg)


def test_no_pairs_is_empty(cfg):
    cfg["reward_winrate"].pop("pairs")
    validate_config(cfg)  # the schema's default: no pairs
    assert plan.resolve_pairs(cfg) == [] and plan.reward_pair_rows(cfg) == []


def test_scoring_spec_ignores_pairs(cfg):
    section = cfg["reward_winrate"]
    spec = rule_table.scoring_spec(section, "sft-s0")
    assert spec["baseline"] == "sft-s0" and "pairs" not in spec
    assert spec["n_prompts"] == section["n_prompts"]
    # Table 3's jobs: the same --spec whatever the pair list (editing pairs reruns none of them)
    other = {**section, "pairs": [["persuasive", "sft"]]}
    assert json.dumps(rule_table.scoring_spec(other), sort_keys=True) == \
        json.dumps(rule_table.scoring_spec(section), sort_keys=True)
    assert rule_table.scoring_spec(section)["baseline"] == "qwen2.5-0.5b"
    bare = {k: v for k, v in section.items() if k != "pairs"}
    assert json.dumps(rule_table.scoring_spec(section), sort_keys=True) == \
        sections_json({"reward_winrate": bare}, "reward_winrate")


def _result(R, file, model, baseline, wr, lo, hi, n=50):
    p = R / file
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"model": model, "baseline": baseline, "n": n, "win_rate": wr,
                             "ci_low": lo, "ci_high": hi}))


def _hand_results(R, rows):
    # (model, baseline) -> (win rate, ci low, ci high) per seed
    values = {("dpo-ultrafeedback-s0", "sft-s0"): (0.6, 0.45, 0.75),
              ("dpo-ultrafeedback-s1", "sft-s1"): (0.4, 0.25, 0.55),
              ("sft-s0", "qwen2.5-0.5b"): (0.8, 0.7, 0.9),
              ("sft-s1", "qwen2.5-0.5b"): (0.9, 0.8, 1.0),
              ("dpo-sycophantic-s0", "dpo-ultrafeedback-s0"): (0.3, 0.2, 0.4),
              ("dpo-sycophantic-s1", "dpo-ultrafeedback-s1"): (0.1, 0.0, 0.2)}
    for r in rows:
        _result(R, r["file"], r["id"], r["baseline"], *values[(r["id"], r["baseline"])])


def test_pairs_table_hand_values(cfg, tmp_path):
    rows = plan.reward_pair_rows(cfg)
    _hand_results(tmp_path, rows)
    df = tables.reward_pairs_table(tmp_path, rows)
    assert list(zip(df["label"], df["baseline_label"], strict=True)) == [
        ("Ultrafeedback", "SFT"), ("SFT", "Qwen 2.5 0.5B"),
        ("Ultrafeedback sycophantic", "Ultrafeedback")]
    uf = df.iloc[0]
    assert uf["win_rate"] == pytest.approx(0.5)                 # (0.6 + 0.4) / 2
    assert uf["win_rate_std"] == pytest.approx(math.sqrt(0.02))  # sample std of 0.6, 0.4
    assert (uf["win_rate_ci_low"], uf["win_rate_ci_high"]) == pytest.approx((0.35, 0.65))
    assert uf["n_seeds"] == 2 and uf["n_prompts"] == 50
    assert uf["models"] == "dpo-ultrafeedback-s0 vs sft-s0;dpo-ultrafeedback-s1 vs sft-s1"
    assert df.iloc[1]["win_rate"] == pytest.approx(0.85)
    assert df.iloc[2]["win_rate"] == pytest.approx(0.2)
    # beside the paper: only SFT vs base is reported (Table 3's .82); the rest N/A
    cmp = compare.pairs_vs_paper(df)
    assert math.isnan(cmp.iloc[0]["reported"]) and math.isnan(cmp.iloc[2]["reported"])
    assert cmp.iloc[1]["reported"] == 0.82
    assert cmp.iloc[1]["difference"] == pytest.approx(0.03)


def test_pairs_table_rejects_a_misplaced_file(cfg, tmp_path):
    rows = plan.reward_pair_rows(cfg)
    _hand_results(tmp_path, rows)
    # a win rate against the base model sitting where the DPO-vs-SFT result belongs
    _result(tmp_path, rows[0]["file"], rows[0]["id"], "qwen2.5-0.5b", 0.9, 0.8, 1.0)
    with pytest.raises(DataError, match="baseline is 'qwen2.5-0.5b', expected 'sft-s0'"):
        tables.reward_pairs_table(tmp_path, rows)


def test_report_table_cli(cfg, tmp_path):
    rows = plan.reward_pair_rows(cfg)
    _hand_results(tmp_path, rows)
    prefix = tmp_path / "tables" / "table3_pairs"
    spec = plan.report_spec(cfg, "table3_pairs")
    assert spec["rows"] == rows
    assert main(["report-table", "table3_pairs", "--results", str(tmp_path), "--spec",
                 json.dumps(spec), "--out-prefix", str(prefix)]) == 0
    md = prefix.with_suffix(".md").read_text()
    assert "SFT vs. base, DPO vs. SFT); 50 prompts." in md
    assert "| Ultrafeedback | SFT | 0.500 ± 0.141 [0.350, 0.650] |" in md
    csv = pd.read_csv(prefix.with_suffix(".csv"))
    assert list(csv["baseline_label"]) == ["SFT", "Qwen 2.5 0.5B", "Ultrafeedback"]
    vs = (tmp_path / "tables" / "table3_pairs_vs_paper.md").read_text()
    assert "| SFT | Qwen 2.5 0.5B | 0.820 | 0.850 |" in vs and "reports win rates only" in vs
    # no pairs configured: an empty table that says so
    assert main(["report-table", "table3_pairs", "--results", str(tmp_path), "--spec",
                 json.dumps({**spec, "rows": []}), "--out-prefix", str(tmp_path / "empty")]) == 0
    assert "No pairs configured" in (tmp_path / "empty.md").read_text()
