# Report: the papers' tables and figures, reported-vs-reproduced comparisons, and the freeze.
# Rows (models x seeds, in paper order) come from prefbias.report.rows.{stylized,sycophancy}_rows
# (built on prefbias.plan). Rules pass only what they read (rows, judge dimensions, answer
# templates), so e.g. a judge-prompt change re-runs the judge jobs and then only the judge table
# and Figure 3 (their inputs changed), never HELM tables.
# Tables: R/tables/<name>.{csv,md,tex} + R/tables/<name>_vs_paper.{csv,md};
# figures: R/figures/<name>.{png,pdf}. `snakemake_report` writes Snakemake's HTML report
# R/report.html (tables and figures flagged report(), captions in report/); `freeze` then writes
# R/MANIFEST.json + R/CITATION.cff and makes R/ read-only: run `prefbias unfreeze R` (Snakefile
# onstart) before a rerun. Its log lives in W: nothing may be written into R after the manifest.
from prefbias.report import rows as _rt

SROWS = _rt.stylized_rows(config)
STRAINED = [r for r in SROWS if r["kind"] != "base"]
SSTYLES = [r for r in SROWS if r["kind"] == "dpo" and r["label"] != "Ultrafeedback"]
YROWS = _rt.sycophancy_rows(config)
SROWS_JSON = json.dumps(SROWS, sort_keys=True)
YROWS_JSON = json.dumps(YROWS, sort_keys=True)
JUDGE_DIMS = json.dumps(config["judge"]["dimensions"])
ANSWER_TEMPLATES = json.dumps(config["sycophancy"]["answer_templates"])
HELM_TABLE_GROUPS = _catalog.HELM_TABLES
REPORT_TABLES = list(_catalog.TABLES)
REPORT_FIGURES = list(_catalog.FIGURES)
REPORT_TARGETS = [f for t in REPORT_TABLES for f in table_out(t)] + [
    f for g in REPORT_FIGURES for f in figure_out(g)
]


rule table3:
    input:
        summaries=[f"{R}/train/{m}/summary.json" for m in _ids(STRAINED)],
        reward=[f"{R}/eval/reward/{m}.json" for m in _ids(STRAINED)],
        eval_examples=[f"{R}/train/{m}/eval_examples.jsonl" for m in _ids(STRAINED)],
    output:
        table_out("table3"),
    log:
        log_path("table3"),
    benchmark:
        bench_path("table3")
    container:
        rule_image("table3")
    threads: nthreads("table3")
    resources:
        **res("table3"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        bootstrap=lambda w: json.dumps(config["report"]["bootstrap"], sort_keys=True),
    shell:
        "prefbias report-table table3 --results {params.results} --rows {params.rows:q}"
        " --bootstrap {params.bootstrap:q} --out-prefix {params.prefix} 2> {log}"


# companion of Table 3: win rates of reward_winrate.pairs (REWARD_PAIRS, rules/evaluate.smk)
rule table3_pairs:
    input:
        sorted({f"{R}/{p['file']}" for p in REWARD_PAIRS}),
    output:
        table_out("table3_pairs"),
    log:
        log_path("table3_pairs"),
    benchmark:
        bench_path("table3_pairs")
    container:
        rule_image("table3_pairs")
    threads: nthreads("table3_pairs")
    resources:
        **res("table3_pairs"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: json.dumps(REWARD_PAIRS, sort_keys=True),
    shell:
        "prefbias report-table table3_pairs --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


rule table4:
    input:
        [f"{R}/eval/helm/{g}.csv" for g in HELM_TABLE_GROUPS.values()],
    output:
        table_out("table4"),
    log:
        log_path("table4"),
    benchmark:
        bench_path("table4")
    container:
        rule_image("table4")
    threads: nthreads("table4")
    resources:
        **res("table4"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
    shell:
        "prefbias report-table table4 --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


rule table5:
    input:
        f"{R}/eval/helm/{HELM_TABLE_GROUPS['table5']}.csv",
    output:
        table_out("table5"),
    log:
        log_path("table5"),
    benchmark:
        bench_path("table5")
    container:
        rule_image("table5")
    threads: nthreads("table5")
    resources:
        **res("table5"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        name="table5",
    shell:
        "prefbias report-table {params.name} --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


use rule table5 as table6 with:
    input:
        f"{R}/eval/helm/{HELM_TABLE_GROUPS['table6']}.csv",
    output:
        table_out("table6"),
    log:
        log_path("table6"),
    benchmark:
        bench_path("table6")
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        name="table6",


use rule table5 as table7 with:
    input:
        f"{R}/eval/helm/{HELM_TABLE_GROUPS['table7']}.csv",
    output:
        table_out("table7"),
    log:
        log_path("table7"),
    benchmark:
        bench_path("table7")
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        name="table7",


use rule table5 as table8 with:
    input:
        f"{R}/eval/helm/{HELM_TABLE_GROUPS['table8']}.csv",
    output:
        table_out("table8"),
    log:
        log_path("table8"),
    benchmark:
        bench_path("table8")
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        name="table8",


rule judge_table:
    input:
        [f"{R}/eval/judge/{m}.summary.json" for m in _ids(SROWS)],
    output:
        table_out("judge_scores"),
    log:
        log_path("judge_table"),
    benchmark:
        bench_path("judge_table")
    container:
        rule_image("judge_table")
    threads: nthreads("judge_table")
    resources:
        **res("judge_table"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        dims=lambda w: JUDGE_DIMS,
    shell:
        "prefbias report-table judge_scores --results {params.results} --rows {params.rows:q}"
        " --dimensions {params.dims:q} --out-prefix {params.prefix} 2> {log}"


rule answer_table:
    input:
        [f"{R}/eval/sycophancy/{m}/answer_scores.json" for m in _ids(YROWS)],
    output:
        table_out("sycophancy_answer"),
    log:
        log_path("answer_table"),
    benchmark:
        bench_path("answer_table")
    container:
        rule_image("answer_table")
    threads: nthreads("answer_table")
    resources:
        **res("answer_table"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
        templates=lambda w: ANSWER_TEMPLATES,
    shell:
        "prefbias report-table sycophancy_answer --results {params.results} --rows {params.rows:q}"
        " --templates {params.templates:q} --out-prefix {params.prefix} 2> {log}"


rule ays_table:
    input:
        [f"{R}/eval/sycophancy/{m}/are_you_sure_scores.json" for m in _ids(YROWS)],
    output:
        table_out("sycophancy_are_you_sure"),
    log:
        log_path("ays_table"),
    benchmark:
        bench_path("ays_table")
    container:
        rule_image("ays_table")
    threads: nthreads("ays_table")
    resources:
        **res("ays_table"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
    shell:
        "prefbias report-table sycophancy_are_you_sure --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


rule figure2:
    input:
        [f"{R}/train/{m}/metrics.jsonl" for m in _ids(SSTYLES)],
    output:
        figure_out("stylized_figure2"),
    log:
        log_path("figure2"),
    benchmark:
        bench_path("figure2")
    container:
        rule_image("figure2")
    threads: nthreads("figure2")
    resources:
        **res("figure2"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: json.dumps(SSTYLES, sort_keys=True),
    shell:
        "prefbias report-figure stylized_figure2 --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


rule figure3:
    input:
        [f"{R}/eval/judge/{m}.summary.json" for m in _ids(SROWS)],
    output:
        figure_out("stylized_figure3"),
    log:
        log_path("figure3"),
    benchmark:
        bench_path("figure3")
    container:
        rule_image("figure3")
    threads: nthreads("figure3")
    resources:
        **res("figure3"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: SROWS_JSON,
        dims=lambda w: JUDGE_DIMS,
    shell:
        "prefbias report-figure stylized_figure3 --results {params.results} --rows {params.rows:q}"
        " --dimensions {params.dims:q} --out-prefix {params.prefix} 2> {log}"


rule saa_figure2:
    input:
        [f"{R}/eval/sycophancy/{m}/answer_scores.json" for m in _ids(YROWS)],
    output:
        figure_out("saa_figure2"),
    log:
        log_path("saa_figure2"),
    benchmark:
        bench_path("saa_figure2")
    container:
        rule_image("saa_figure2")
    threads: nthreads("saa_figure2")
    resources:
        **res("saa_figure2"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
        name="saa_figure2",
        templates=lambda w: ANSWER_TEMPLATES,
    shell:
        "prefbias report-figure {params.name} --results {params.results} --rows {params.rows:q} --templates {params.templates:q}"
        " --out-prefix {params.prefix} 2> {log}"


rule saa_figure3:
    input:
        [f"{R}/eval/sycophancy/{m}/are_you_sure_scores.json" for m in _ids(YROWS)],
    output:
        figure_out("saa_figure3"),
    log:
        log_path("saa_figure3"),
    benchmark:
        bench_path("saa_figure3")
    container:
        rule_image("saa_figure3")
    threads: nthreads("saa_figure3")
    resources:
        **res("saa_figure3"),
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
        name="saa_figure3",
    shell:
        "prefbias report-figure {params.name} --results {params.results} --rows {params.rows:q}"
        " --out-prefix {params.prefix} 2> {log}"


use rule saa_figure2 as saa_figure4 with:
    output:
        figure_out("saa_figure4"),
    log:
        log_path("saa_figure4"),
    benchmark:
        bench_path("saa_figure4")
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
        name="saa_figure4",
        templates=lambda w: ANSWER_TEMPLATES,


use rule saa_figure3 as saa_figure5 with:
    output:
        figure_out("saa_figure5"),
    log:
        log_path("saa_figure5"),
    benchmark:
        bench_path("saa_figure5")
    params:
        results=results_of,
        prefix=prefix_of,
        rows=lambda w: YROWS_JSON,
        name="saa_figure5",


# `snakemake --report` only reads .snakemake/ metadata: it runs where Snakemake runs, in the train
# image (which carries Snakemake) with --sdm apptainer.
localrules:
    snakemake_report,


rule snakemake_report:
    input:
        targets=REPORT_TARGETS,
        captions=[caption(n) for n in _catalog.ITEMS] + [caption("vs_paper")],
        workflow_caption=f"{workflow.basedir}/report/workflow.rst",
    output:
        f"{R}/report.html",
    log:
        log_path("snakemake_report"),
    benchmark:
        bench_path("snakemake_report")
    container:
        rule_image("snakemake_report")
    threads: nthreads("snakemake_report")
    resources:
        **res("snakemake_report"),
    params:
        config=lambda w: json.dumps(config, sort_keys=True),
        snakefile=workflow.main_snakefile,
    shell:
        "prefbias snakemake-report --out {output} --snakefile {params.snakefile:q}"
        " --config-json {params.config:q} {input.targets:q} 2> {log}"


rule freeze:
    input:
        REPORT_TARGETS,
        f"{R}/report.html",
    output:
        f"{R}/MANIFEST.json",
    log:
        f"{W}/logs/freeze/all.log",
    container:
        rule_image("freeze")
    threads: nthreads("freeze")
    resources:
        **res("freeze"),
    params:
        results=lambda w, output: os.path.dirname(output[0]),
        config=lambda w: json.dumps(config, sort_keys=True),
    shell:
        "prefbias freeze {params.results} --config-json {params.config:q} 2> {log}"
