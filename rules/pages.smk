# Pages a researcher reads in the report without touching work/ (prefbias report-pages): the
# sample pages (R/samples/*.html: generations + judge, style rewrites, Answer Suggestion, Are You
# Sure), the model and dataset cards in the Hub's format (R/cards/), and the software-versions
# table (R/software_versions.{yml,html}). Report targets, frozen with the rest.
from pathlib import Path

from prefbias.report.cards import card_prefsets
from prefbias.report.samples import PAGES as SAMPLE_PAGES
from prefbias.report.samples import page_inputs

CARD_FILES = [
    f"{R}/cards/models/{m}/README.md" for m in plan.trained_models(config)
] + [f"{R}/cards/datasets/{p}/README.md" for p in card_prefsets(config)]
PAGES_TARGETS = (
    [f"{R}/samples/{k}.html" for k in SAMPLE_PAGES]
    + CARD_FILES
    + [
        f"{R}/cards/index.html",
        f"{R}/software_versions.yml",
        f"{R}/software_versions.html",
    ]
)


rule report_pages:
    input:
        samples=page_inputs(config),
        train=[f"{R}/train/{m}/summary.json" for m in plan.trained_models(config)],
        evals=EVALUATE_TARGETS,
        helm=HELM_TARGETS,
        prefs=[plan.prefs_path(config, p, "train") for p in card_prefsets(config)],
        # the resolved config as a file (rule resolved_config, rules/report.smk)
        config=f"{W}/resolved_config.json",
    output:
        [
            report(
                f"{R}/samples/{k}.html",
                category="Samples and cards",
                labels={"page": k.replace("_", " ")},
            )
            for k in SAMPLE_PAGES
        ],
        CARD_FILES,
        report(
            f"{R}/cards/index.html",
            category="Samples and cards",
            labels={"page": "model and dataset cards"},
        ),
        report(
            f"{R}/software_versions.html",
            category="Samples and cards",
            labels={"page": "software versions"},
        ),
        versions=f"{R}/software_versions.yml",
    log:
        log_path("report_pages"),
    benchmark:
        bench_path("report_pages")
    container:
        rule_image("report_pages")
    threads: nthreads("report_pages")
    resources:
        **res("report_pages"),
    params:
        # R and W, from the files (R/software_versions.yml, W/data/prefs/<set>/train.jsonl)
        results=lambda w, output: os.path.dirname(output.versions),
        work=lambda w, input: str(Path(input.prefs[0]).parents[3]),
    shell:
        "prefbias report-pages --results {params.results} --work {params.work}"
        " --config-json {input.config} 2> {log}"
