"""Report tables, reported-vs-reproduced and figures on synthetic fixtures (two seeds)."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from prefbias import plan
from prefbias.report import compare, figures, paper, render, tables
from prefbias.report.aggregate import paper_order

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "report"))
from build import build  # noqa: E402


@pytest.fixture(scope="module")
def cfg(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["seeds"] = [0, 1]
    # the stand-ins evaluated (configs/tiny.yaml skips them: test_random_stand_in_rows_read_not_run)
    c["report"]["skip_random_stand_in_evals"] = False
    return c


@pytest.fixture(scope="module")
def results(tmp_path_factory, cfg):
    return build(tmp_path_factory.mktemp("R"), cfg)


def test_paper_numbers_complete():
    for name in ("table3", "table4", "table5", "table6", "table7", "table8"):
        t = paper.reported_table(name)
        assert all(len(v) == len(t["columns"]) for v in t["rows"].values())
    assert paper.reported_table("table3")["rows"]["SFT"] == [1.04, None, 0.82]
    assert paper.row_order("table7")[3] == "Ultrafeedback authoritative"
    assert paper.row_order("table5")[3] == "Ultrafeedback sycophantic"
    assert paper.reported_table("table8")["rows"]["Ultrafeedback persuasive"][0] == 0.64
    assert {c["figure"] for c in paper.claims(paper="saa-orpo")} == {
        "figure2", "figure3", "figure4", "figure5"}


def test_table3_aggregates_seeds(results, cfg):
    df = tables.table3(results, plan.stylized_rows(cfg), cfg["report"]["bootstrap"])
    assert list(df["label"])[0] == "SFT"
    assert "Qwen 2.5 0.5B" not in set(df["label"])
    sft = df[df["label"] == "SFT"].iloc[0]
    assert sft["n_seeds"] == 2 and pd.isna(sft["validation_accuracy"])
    s0 = json.loads((results / "train/sft-s0/summary.json").read_text())["final_eval_loss"]
    s1 = json.loads((results / "train/sft-s1/summary.json").read_text())["final_eval_loss"]
    assert sft["validation_loss"] == pytest.approx((s0 + s1) / 2)
    assert sft["validation_loss_std"] > 0
    assert {"win_rate_ci_low", "win_rate_ci_high"} <= set(df.columns)
    # validation loss / accuracy: bootstrap CIs over the eval examples, around the values
    for _, row in df.iterrows():
        assert row["validation_loss_ci_low"] <= row["validation_loss"] <= \
            row["validation_loss_ci_high"], row["label"]
        if row["label"] != "SFT":
            assert row["validation_accuracy_ci_low"] <= row["validation_accuracy"] <= \
                row["validation_accuracy_ci_high"], row["label"]
    assert pd.isna(sft["validation_accuracy_ci_low"])


def test_single_seed_has_no_std(tmp_path, tiny_config):
    R = build(tmp_path, tiny_config)
    df = tables.table3(R, plan.stylized_rows(tiny_config), tiny_config["report"]["bootstrap"])
    assert df["n_seeds"].eq(1).all() and df["validation_loss_std"].isna().all()


def test_helm_tables_and_paper_order(results, cfg):
    rows = plan.stylized_rows(cfg)
    t7 = paper_order(tables.helm_table(results, rows, "robustness"),
                            paper.row_order("table7"))
    assert list(t7["label"]) == paper.row_order("table7")
    t4 = tables.table4(results, rows)
    assert set(plan.HELM_GROUPS) <= set(t4.columns) and len(t4) == 6


def test_vs_paper(results, cfg, tmp_path):
    df = tables.table3(results, plan.stylized_rows(cfg), cfg["report"]["bootstrap"])
    cmp = compare.numeric_vs_paper("table3", df)
    row = cmp[(cmp["label"] == "SFT") & (cmp["column"] == "validation_loss")].iloc[0]
    assert row["reported"] == 1.04
    assert row["difference"] == pytest.approx(row["reproduced"] - 1.04)
    paths = compare.write_numeric(tmp_path / "table3_vs_paper", "table3", df)
    assert all(p.exists() for p in paths)
    assert "Reported" in paths[1].read_text()


def test_sycophancy_tables_and_claims(results, cfg, tmp_path):
    rows = plan.sycophancy_rows(cfg)
    templates = cfg["sycophancy"]["answer_templates"]
    ans = tables.answer_table(results, rows, list(templates))
    assert set(ans["label"]) == {"non-aligned", "aligned", "aligned-SAA"}
    assert "none" not in ans.columns and "think_correct_ci_low" in ans.columns
    ays = tables.ays_table(results, rows)
    assert ays["revision_rate"].between(0, 1).all()
    # fixtures: aligned more sycophantic than non-aligned, SAA in between
    out = []
    for c in paper.claims(paper="saa-orpo"):
        out += compare.check_claim(c, answer=ans, ays=ays)
    byid = {(r["id"], r["scope"]): r["holds"] for r in out}
    point = {(r["id"], r["scope"]): r["point_estimates"] for r in out}
    models = [s for (i, s) in byid if i == "saa-fig2-correct" and s != "overall"]
    # the fixture's aligned score is 0.08 above non-aligned with CIs of +-0.06 (pooled over two
    # datasets: +-0.042): the point estimates point as claimed, the CIs overlap -> undecided
    assert all(point[("saa-fig2-correct", m)] == "as claimed" for m in models)
    assert byid[("saa-fig2-correct", "overall")] == "inconclusive"
    assert byid[("saa-fig2-incorrect", "overall")] == "inconclusive"  # the same 0.08 gap
    # Are You Sure: aligned revises 0.24 more often, Wilson CIs over 114 dialogues: decided
    assert byid[("saa-fig3-ays", "overall")] == "holds"
    # a sign claim: think_correct's +0.10 / +0.18 with CIs excluding 0
    assert byid[("saa-fig2-correct-up", "overall")] == "holds"
    assert byid[("saa-fig2-dont-think", "overall")] == "n/a"
    assert {r["holds"] for r in out} <= {"holds", "contradicted", "inconclusive", "n/a",
                                         "yes (exception reproduced)",
                                         "no (exception: the claim holds here)"}
    paths = compare.write_claims(tmp_path / "x_vs_paper", paper.claims(paper="saa-orpo"),
                                 "c", answer=ans, ays=ays, notice="Built from stand-ins.")
    md = paths[1].read_text()
    assert "Outcome" in md and "95% CI" in md and "Built from stand-ins." in md
    assert "Built from stand-ins." in paths[0].read_text()  # the CSV read alone says it too
    # the n a rate rests on: AYS divides by n_evaluable (fixture: 3 x 38), not n_first_correct
    assert (ays["n_evaluable"] == 114).all() and (ays["n_first_correct"] == 120).all()
    assert ans["baseline_accuracy"].between(0, 1).all() and (ans["n"] == 200).all()


def test_claims_are_decided_from_intervals():
    ci = compare.compare_intervals
    assert ci((0.6, 0.55, 0.65), (0.4, 0.35, 0.45), ">") == "holds"
    assert ci((0.6, 0.55, 0.65), (0.4, 0.35, 0.45), "<") == "contradicted"
    # the review's case: 0.250 > 0.226 with CIs that overlap almost entirely
    assert ci((0.250, 0.15, 0.35), (0.226, 0.13, 0.33), ">") == "inconclusive"
    assert ci((0.250, math.nan, math.nan), (0.226, 0.13, 0.33), ">") == "inconclusive"
    assert ci((math.nan, 0, 0), (0.2, 0.1, 0.3), ">") == "n/a"
    assert compare.sign_outcome((0.1, 0.02, 0.18), 1) == "holds"
    assert compare.sign_outcome((0.1, -0.02, 0.18), 1) == "inconclusive"
    assert compare.sign_outcome((-0.1, -0.18, -0.02), 1) == "contradicted"
    comb = compare._combine
    assert comb(["holds", "holds"], "all") == "holds"
    assert comb(["holds", "inconclusive"], "all") == "inconclusive"
    assert comb(["holds", "contradicted"], "all") == "contradicted"
    assert comb(["holds", "holds", "inconclusive"], "most") == "holds"
    assert comb(["holds", "inconclusive", "inconclusive"], "most") == "inconclusive"
    assert comb(["contradicted", "contradicted", "inconclusive"], "most") == "contradicted"


def test_a_claim_on_too_few_rows_is_not_decided():
    claim = {"id": "c", "paper": "saa-orpo", "figure": "figure3", "text": "t",
             "kind": "ays_compare", "a": "aligned", "op": ">", "b": "non-aligned"}
    ays = pd.DataFrame([
        {"instruct": "m", "model": "M", "label": "aligned", "revision_rate": 0.9,
         "revision_rate_ci_low": 0.8, "revision_rate_ci_high": 0.95, "n_evaluable": 5},
        {"instruct": "m", "model": "M", "label": "non-aligned", "revision_rate": 0.1,
         "revision_rate_ci_low": 0.05, "revision_rate_ci_high": 0.2, "n_evaluable": 40}])
    assert compare.check_claim(claim, ays=ays, min_n=4)[0]["holds"] == "holds"
    row = compare.check_claim(claim, ays=ays, min_n=16)[0]
    assert row["holds"] == "inconclusive" and "n=5 below 16: too few" in row["detail"]


def test_answer_score_of_a_never_correct_model_is_at_floor(tmp_path, tiny_config):
    from prefbias.report.build import shown

    rows = [r for r in plan.sycophancy_rows(tiny_config)][:1]
    zero = {t: {"accuracy": 0.0, "n": 40, "score": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                "accuracy_ci_low": 0.0, "accuracy_ci_high": 0.0, "n_ungraded": 0}
            for t in ("none", "think_correct")}
    p = tmp_path / "eval" / "sycophancy" / rows[0]["id"] / "answer_scores.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"trivia_qa": zero}))
    df = tables.answer_table(tmp_path, rows, ["none", "think_correct"])
    assert pd.isna(df["think_correct"].iloc[0]) and df["think_correct_floor"].iloc[0] == 1
    _, disp = shown(df, ["baseline_accuracy", "think_correct"], {}, 16, floor=["think_correct"])
    assert disp["think_correct"].iloc[0] == "at floor: never correct"
    assert "0.000 [0.000, 0.000]" not in str(disp["think_correct"].iloc[0])


def test_write_table_formats(results, cfg, tmp_path):
    dims = cfg["judge"]["dimensions"]
    df = tables.judge_table(results, plan.stylized_rows(cfg), dims)
    paths = render.write_table(tmp_path / "judge_scores", df, ["label"], dims, "Judge")
    csv, md, tex, page = (p.read_text() for p in paths)
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex", ".html"]
    assert page.count("<tr>") == len(df) + 1 and "±" in page  # header + one row per model
    assert "helpfulness_ci_low" in csv.splitlines()[0]
    assert "±" in md and "[" in md and "over 2 seeds" in md
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex


def test_figures_render(results, cfg, tmp_path):
    rows = plan.stylized_rows(cfg)
    styles = [r for r in rows if r["kind"] == "dpo" and r["label"] != "Ultrafeedback"]
    made = figures.figure2(results, styles, tmp_path / "f2")
    dims = cfg["judge"]["dimensions"]
    made += figures.figure3(tables.judge_table(results, rows, dims), dims, tmp_path / "f3")
    yrows = plan.sycophancy_rows(cfg)
    templates = cfg["sycophancy"]["answer_templates"]
    ans = tables.answer_table(results, yrows, list(templates))
    made += figures.answer_figure(ans, templates, ("aligned", "aligned-SAA"), tmp_path / "s4",
                                  "t")
    made += figures.ays_figure(tables.ays_table(results, yrows), ("non-aligned", "aligned"),
                               tmp_path / "s3", "t")
    for p in made:
        assert p.stat().st_size > 1000
    assert {p.suffix for p in made} == {".png", ".pdf"}


def test_every_item_builds_from_its_plan_spec_and_says_what_ran(results, cfg, tmp_path):
    """Every table and figure of the catalog, built as the rules build it (plan.report_spec);
    a run of random-weight stand-ins says so in every caption (issue 15.5)."""
    from prefbias.report.build import build_figure, build_table

    for name in plan.TABLES:
        spec = plan.report_spec(cfg, name)
        build_table(name, results, spec, tmp_path / "tables" / name)
        md = (tmp_path / "tables" / f"{name}.md").read_text()
        tex = (tmp_path / "tables" / f"{name}.tex").read_text()
        said = "SmolLM2-135M-Instruct as the judge" if name == "judge_check" \
            else "random-weight tiny stand-ins"  # the judge check rests on the judge alone
        assert said in md and said in tex, name
        assert (tmp_path / "tables" / f"{name}_vs_paper.md").exists()
        page = (tmp_path / "tables" / f"{name}.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and "<table>" in page  # inline in report
    check = (tmp_path / "tables" / "judge_check.md").read_text()
    assert "| SmolLM2-135M-Instruct | 32 | 0.900 [0.800, 1.000] | 1.800 [1.700, 1.900] | " \
        "1.550 [1.450, 1.650] |" in check, check
    answer = (tmp_path / "tables" / "sycophancy_answer.md").read_text()
    assert "| SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2) | non-aligned |" in answer
    # template columns in the config's order, though the rule passes the spec as sorted JSON
    spec = json.loads(json.dumps(plan.report_spec(cfg, "sycophancy_answer"), sort_keys=True))
    build_table("sycophancy_answer", results, spec, tmp_path / "sorted")
    header = (tmp_path / "sorted.md").read_text().splitlines()[4]
    order = [k for k in cfg["sycophancy"]["answer_templates"] if k != "none"]
    cells = [cfg["sycophancy"]["answer_templates"][k].replace("{question}", "").strip()
             for k in order]
    assert [header.index(c) for c in cells] == sorted(header.index(c) for c in cells)
    for name in plan.FIGURES:
        build_figure(name, results, plan.report_spec(cfg, name), tmp_path / "figures" / name)
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000


def test_every_catalog_item_has_its_functions_and_no_kind_string():
    """Each item of plan.REPORT_ITEMS carries its rows and models as functions of the config
    and has exactly one builder on the report side: no string names a kind of rows."""
    from prefbias.report.build import FIGURE_BUILDERS, TABLE_BUILDERS

    assert set(TABLE_BUILDERS) == set(plan.TABLES)
    assert set(FIGURE_BUILDERS) == set(plan.FIGURES)
    for item in plan.REPORT_ITEMS.values():
        assert callable(item.rows) and callable(item.models), item.title


def test_figure_footnote_and_legend_name_what_ran(results, cfg, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures.plt, "close", drawn.append)
    spec = plan.report_spec(cfg, "stylized_figure3")
    from prefbias.report.build import build_figure

    build_figure("stylized_figure3", results, spec, tmp_path / "f3")
    (fig,) = drawn
    assert any(t.get_text().startswith("Built from random-weight") for t in fig.texts)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "Qwen2.5-0.5B (random-weight tiny stand-in)" and "SFT" in legend
    drawn.clear()
    build_figure("saa_figure3", results, plan.report_spec(cfg, "saa_figure3"), tmp_path / "s3")
    ticks = [t.get_text().replace("\n", " ") for t in drawn[0].axes[0].get_xticklabels()]
    assert ticks[0] == "SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)"


def test_style_validation_holds_out_at_least_min_eval_pairs(tiny_config):
    """A style set (24 demo pairs, no test split) held out 5 % = 1 pair; dpo.eval_min_examples
    (16 in the demo) makes it 16, leaving 8 to train on."""
    from prefbias.io import DataError
    from prefbias.train.batching import split_holdout

    rows = list(range(24))
    assert len(split_holdout(rows, 0.05, 0, 8)[1]) == 1          # the old demo: one pair
    tr, ev = split_holdout(rows, 0.05, 0, tiny_config["dpo"]["eval_max_examples"],
                           tiny_config["dpo"]["eval_min_examples"])
    assert (len(tr), len(ev)) == (8, 16) and not set(tr) & set(ev)
    with pytest.raises(DataError, match="eval_min_examples"):
        split_holdout(list(range(10)), 0.05, 0, None, 16)


def test_tables_carry_n_and_mark_too_few(results, cfg, tmp_path):
    from prefbias.report.build import build_table

    spec = plan.report_spec(cfg, "table3")
    spec["min_n"] = 45  # the fixture validates on 40 examples and 50 prompts
    build_table("table3", results, spec, tmp_path / "table3")
    df = pd.read_csv(tmp_path / "table3.csv")
    assert (df["n_validation"] == 40).all() and (df["n_prompts"] == 50).all()
    assert df["validation_loss_too_few"].all() and not df["win_rate_too_few"].any()
    md = (tmp_path / "table3.md").read_text()
    assert "n (validation)" in md and "(n=40 below 45: too few)" in md
    assert df["validation_loss"].dtype.kind == "f"  # the CSV keeps numbers, not display text
    vs = (tmp_path / "table3_vs_paper.md").read_text()
    assert spec["notice"] and spec["notice"] in vs  # a vs_paper file says what ran
    assert spec["notice"] in (tmp_path / "table3_vs_paper.csv").read_text()
    spec = plan.report_spec(cfg, "table7")
    build_table("table7", results, spec, tmp_path / "table7")
    assert "n (instances)" in (tmp_path / "table7.md").read_text()
    assert "too few" in (tmp_path / "table7.md").read_text()  # 4 HELM instances < 16
    spec = plan.report_spec(cfg, "sycophancy_answer")
    build_table("sycophancy_answer", results, spec, tmp_path / "ans")
    md = (tmp_path / "ans.md").read_text()
    assert "Baseline accuracy" in md and "ungraded" in md
    spec = plan.report_spec(cfg, "sycophancy_are_you_sure")
    build_table("sycophancy_are_you_sure", results, spec, tmp_path / "ays")
    assert "n (evaluable)" in (tmp_path / "ays.md").read_text()


def test_judge_claims_on_too_few_prompts_are_not_decided():
    claim = {"id": "j", "paper": "stylized-dpo", "figure": "figure3", "text": "t",
             "kind": "judge_best", "label": "SFT"}
    judge = pd.DataFrame([
        {"label": "SFT", "helpfulness": 4.0, "helpfulness_ci_low": 3.9,
         "helpfulness_ci_high": 4.1, "helpfulness_n": 8},
        {"label": "Base", "helpfulness": 2.0, "helpfulness_ci_low": 1.9,
         "helpfulness_ci_high": 2.1, "helpfulness_n": 8}])
    assert compare.check_claim(claim, judge=judge, dimensions=["helpfulness"],
                               min_n=4)[0]["holds"] == "holds"
    row = compare.check_claim(claim, judge=judge, dimensions=["helpfulness"], min_n=16)[0]
    assert row["holds"] == "inconclusive" and "n=8 below 16: too few" in row["detail"]


def test_both_dpo_readings_side_by_side_in_the_stylized_items(tmp_path, cfg):
    """configs/dpo-other-readings.yaml (docs/FIDELITY.md): the other reading's models are rows of
    the stylized-dpo tables and figures, after the paper's rows and labelled by the reading; the
    paper's rows and the reported-vs-reproduced comparison stay the paper's."""
    from prefbias.report.build import build_figure, build_table

    other = copy.deepcopy(cfg)
    other["dpo"]["ultrafeedback"]["other_readings"] = [{"cycle_mode": "independent"}]
    other["dpo"]["styles"]["other_readings"] = [{"lr_schedule_over": "epochs"}]
    R = build(tmp_path / "R", other)
    labels = ["Ultrafeedback (cycle_mode: independent)",
              *(f"{plan.STYLE_LABELS[s]} (lr_schedule_over: epochs)"
                for s in other["styles"]["names"])]
    for name in ("table3", "table4", "table5", "judge_scores"):
        build_table(name, R, plan.report_spec(other, name), tmp_path / name)
        df = pd.read_csv(tmp_path / f"{name}.csv")
        own = [m.label for m in plan.stylized_models(cfg, 0)
               if m.kind != "base" or name != "table3"]
        got = list(df["label"])
        assert got[len(own):] == labels and len(got) == len(own) + 4, name  # after the own rows
        assert df["n_seeds"].iloc[len(own):].eq(2).all(), name  # both seeds per reading row
        if name != "judge_scores":  # numeric vs paper: the paper reports no other reading
            vs = pd.read_csv(tmp_path / f"{name}_vs_paper.csv")
            assert set(vs["label"]) == set(paper.row_order(name)), name
    for name in ("stylized_figure2", "stylized_figure3"):
        build_figure(name, R, plan.report_spec(other, name), tmp_path / name)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    fig2 = {r["label"] for r in plan.report_spec(other, "stylized_figure2")["rows"]}
    assert set(labels[1:]) <= fig2 and labels[0] not in fig2  # Figure 2: the style variants


def test_random_stand_in_rows_read_not_run(results, cfg, tmp_path):
    """report.skip_random_stand_in_evals (issue 21.6): the random-weight stylized-dpo models are
    neither judged nor scored by the reward model; their rows stay in Table 3, its pairs
    companion, the judge table, the vs-paper files and Figure 3, and say why they have no
    number; nothing reads a judge or reward file (here: absent)."""
    import shutil

    from prefbias.report.build import build_figure, build_table

    on = copy.deepcopy(cfg)
    on["report"]["skip_random_stand_in_evals"] = True
    R = tmp_path / "R"
    shutil.copytree(results, R)
    for sub in ("judge", "reward", "reward_vs"):
        shutil.rmtree(R / "eval" / sub, ignore_errors=True)
    assert plan.eval_skipped(on, "dpo-persuasive-s1") == plan.NOT_RUN_RANDOM
    assert plan.eval_skipped(cfg, "dpo-persuasive-s1") is None  # the switch off: evaluated
    assert plan.evaluated_stylized_ids(on) == [] and plan.evaluated_stylized_ids(cfg)
    assert "not_run" not in {k for r in plan.report_rows(cfg, "table3") for k in r}
    why = plan.NOT_RUN_RANDOM
    for name in ("table3", "table3_pairs", "judge_scores"):
        inputs = plan.report_inputs(on, name)
        assert not [p for p in inputs if "/eval/" in p], inputs
        rows = plan.report_rows(on, name)
        assert rows and all(r["not_run"] == why for r in rows)
        build_table(name, R, plan.report_spec(on, name), tmp_path / "t" / name)
        for ext in ("md", "html", "tex"):
            assert why in (tmp_path / "t" / f"{name}.{ext}").read_text(), (name, ext)
        assert why in (tmp_path / "t" / f"{name}_vs_paper.md").read_text(), name
        csv = pd.read_csv(tmp_path / "t" / f"{name}.csv")
        assert set(csv["not_run"]) == {why}, name
    t3 = pd.read_csv(tmp_path / "t" / "table3.csv")
    assert t3["win_rate"].isna().all() and t3["validation_loss"].notna().all()
    md = (tmp_path / "t" / "table3.md").read_text()
    sft = next(line for line in md.splitlines() if line.startswith("| SFT |"))
    # the SFT row: its loss is a number, its accuracy N/A (none for SFT), its win rate not run
    assert sft.count(why) == 2 and "| N/A |" in sft, sft  # win rate and its n (prompts)
    judge = pd.read_csv(tmp_path / "t" / "judge_scores.csv")
    assert len(judge) == len({r["label"] for r in plan.report_rows(on, "judge_scores")})
    claims = pd.read_csv(tmp_path / "t" / "judge_scores_vs_paper.csv", keep_default_na=False)
    assert set(claims["holds"]) == {compare.NA}
    build_figure("stylized_figure3", R, plan.report_spec(on, "stylized_figure3"),
                 tmp_path / "f" / "figure3")
    assert (tmp_path / "f" / "figure3.png").stat().st_size > 1000


def test_figure3_says_what_has_no_judge_scores(tmp_path, monkeypatch):
    """Figure 3 with no judge data at all, or with some rows not run, writes its files and
    says it in the plot."""
    texts: list[str] = []
    real_text = figures.plt.Axes.text

    def text(self, x, y, s, *a, **kw):
        texts.append(s)
        return real_text(self, x, y, s, *a, **kw)

    monkeypatch.setattr(figures.plt.Axes, "text", text)
    dims = ["helpfulness", "harmlessness"]
    empty = pd.DataFrame(columns=["label", *dims])
    assert all(p.exists() for p in figures.figure3(empty, dims, tmp_path / "empty"))
    assert texts == ["No judge scores"]
    texts.clear()
    mixed = pd.DataFrame([{"label": "SFT", "helpfulness": math.nan, "harmlessness": math.nan,
                           "not_run": plan.NOT_RUN_RANDOM},
                          {"label": "DPO", "helpfulness": 3.0, "harmlessness": 4.0,
                           "not_run": math.nan}])
    figures.figure3(mixed, dims, tmp_path / "mixed", names={"SFT": "SFT (tiny)"})
    assert texts == ["Not run: random-weight stand-in: SFT (tiny)"]
    texts.clear()
    figures.figure3(mixed.iloc[:1], dims, tmp_path / "none")
    assert texts == ["No judge scores.\nNot run: random-weight stand-in: SFT"]
