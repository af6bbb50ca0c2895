# Report: the papers' tables and figures, reported-vs-reproduced comparisons, and the freeze.
# One `table` and one `figure` rule, a job per item of prefbias.plan.REPORT_ITEMS: inputs, rows
# and config keys come from plan.report_inputs / plan.report_spec, so e.g. a judge-prompt change
# re-runs the judge jobs and then only the judge table and Figure 3 (their inputs changed).
# Tables: R/tables/<name>.{csv,md,html,tex} + R/tables/<name>_vs_paper.{csv,md,html};
# figures: R/figures/<name>.{png,pdf}. `snakemake_report` writes Snakemake's HTML report
# R/report.html (tables and figures flagged report(), captions in report/); `freeze` then writes
# R/MANIFEST.json + R/CITATION.cff and makes R/ read-only: run `prefbias unfreeze R` (Snakefile
# onstart) before a rerun. Its log lives in W: nothing may be written into R after the manifest.
REPORT_TARGETS = [f for name in plan.REPORT_ITEMS for f in item_files(name)]


wildcard_constraints:
    table="|".join(plan.TABLES),
    figure="|".join(plan.FIGURES),


rule table:
    input:
        report_item_inputs("table"),
    output:
        f"{R}/tables/{{table}}.csv",
        f"{R}/tables/{{table}}.md",
        # the HTML twins are what the report shows inline (a CSV there is a download)
        _in_report(
            f"{R}/tables/{{table}}.html", "table", "Tables", "reproduced", "table"
        ),
        f"{R}/tables/{{table}}.tex",
        f"{R}/tables/{{table}}_vs_paper.csv",
        f"{R}/tables/{{table}}_vs_paper.md",
        _in_report(
            f"{R}/tables/{{table}}_vs_paper.html",
            "table",
            "Reported vs reproduced",
            "reported vs reproduced",
            "vs_paper",
        ),
    log:
        log_path("table", "table"),
    benchmark:
        bench_path("table", "table")
    container:
        rule_image("table")
    threads: nthreads("table")
    resources:
        **res("table"),
    params:
        results=results_of,
        prefix=prefix_of,
        spec=report_item_spec("table"),
        notice=report_item_notice("table"),
    shell:
        "prefbias report-table {wildcards.table} --results {params.results}"
        " --spec {params.spec:q} --out-prefix {params.prefix} 2> {log}"


rule figure:
    input:
        report_item_inputs("figure"),
    output:
        _in_report(
            f"{R}/figures/{{figure}}.png", "figure", "Figures", "reproduced", "figure"
        ),
        f"{R}/figures/{{figure}}.pdf",
    log:
        log_path("figure", "figure"),
    benchmark:
        bench_path("figure", "figure")
    container:
        rule_image("figure")
    threads: nthreads("figure")
    resources:
        **res("figure"),
    params:
        results=results_of,
        prefix=prefix_of,
        spec=report_item_spec("figure"),
        notice=report_item_notice("figure"),
    shell:
        "prefbias report-figure {wildcards.figure} --results {params.results}"
        " --spec {params.spec:q} --out-prefix {params.prefix} 2> {log}"


# Named targets (`snakemake table4`, `snakemake judge_table`, ... as in the README): one per
# report item, requesting its files; the table / figure rules above do the work.
for _name, _item in plan.REPORT_ITEMS.items():

    rule:
        name:
            _item.target
        input:
            item_files(_name),
        localrule: True


# The resolved config (defaults filled) the report and the freeze record, as a file: on their command
# lines it would be ~10 KB printed by every run and dry run. Its params are the rerun trigger: a
# config edit rewrites the file, and the report and freeze rerun on their changed input.
rule resolved_config:
    output:
        f"{W}/resolved_config.json",
    log:
        f"{W}/logs/resolved_config/all.log",
    params:
        config=lambda w: json.dumps(config, sort_keys=True),
    run:
        write_json(output[0], json.loads(params.config))


# `snakemake --report` only reads .snakemake/ metadata: it runs where Snakemake runs, in the train
# image (which carries Snakemake) with --sdm apptainer.
rule snakemake_report:
    input:
        targets=REPORT_TARGETS + PAGES_TARGETS,
        captions=[in_checkout(caption(n)) for n in ("table", "figure", "vs_paper")],
        workflow_caption=in_checkout(f"{workflow.basedir}/report/workflow.rst"),
        config=rules.resolved_config.output[0],
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
        snakefile=in_checkout(workflow.main_snakefile),
    shell:
        "prefbias snakemake-report --out {output} --snakefile {params.snakefile:q}"
        " --config-json {input.config} {input.targets:q} 2> {log}"


rule freeze:
    input:
        REPORT_TARGETS,
        PAGES_TARGETS,
        f"{R}/report.html",
        config=rules.resolved_config.output[0],
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
    shell:
        "prefbias freeze {params.results} --config-json {input.config} 2> {log}"
