# HELM (stylized-dpo §5.1.2, Tables 4-8): crfm-helm 0.5.16 in its own environment (.venv-helm,
# scripts/setup-helm-env.sh; helm.sif on the cluster). Scenario data is staged once (helm_stage). One job per (model, scenario) for the six
# stylized models of every seed (config helm.jobs: per_scenario; per_model: one job per model),
# then one summary over all seeds. Logic: prefbias.evaluation.helm_*.
from prefbias.evaluation import helm_stage as _helm_stage

HELM_SCENARIOS = list(config["helm"]["scenarios"])
HELM_MODELS = plan.stylized_ids(config)
HELM_GROUPS = config["helm"]["groups"]

HELM_TARGETS = [f"{R}/eval/helm/{g}.csv" for g in HELM_GROUPS] + [
    f"{R}/eval/helm/summary.csv"
]
HELM_DATA = f"{W}/helm/data"


localrules:
    helm_stage,


# HELM's own downloaders for every configured scenario, on the login node (compute nodes are
# often offline); with helm.fixtures they find every file and download nothing.
rule helm_stage:
    output:
        directory(HELM_DATA),
    log:
        log_path("helm_stage"),
    benchmark:
        bench_path("helm_stage")
    container:
        rule_image("helm_stage")
    params:
        spec=lambda w: _helm_stage.stage_spec_json(config["helm"]),
    shell:
        "prefbias helm-stage --spec {params.spec:q} --out {output} 2> {log}"


if config["helm"]["jobs"] == "per_model":

    # one helm-run per model with every scenario's run entries (tiny/local runs: HELM's
    # start-up, the model load and a Snakemake job paid 6 times instead of 30)
    rule helm_run:
        input:
            model=lambda w: model_dir(w.model),
            data=HELM_DATA,
        output:
            stats=[f"{R}/eval/helm/{{model}}/{s}.json" for s in HELM_SCENARIOS],
        log:
            log_path("helm_run", "model"),
        benchmark:
            bench_path("helm_run", "model")
        priority: HELM_STAGE
        container:
            rule_image("helm_run")
        threads: nthreads("helm_run")
        resources:
            **res("helm_run"),
        params:
            spec=job_spec("helm_run"),
            scenarios=HELM_SCENARIOS,
            outdir=lambda w: f"{W}/helm/{w.model}/all",
        shell:
            "prefbias helm-run --model-dir {input.model} --model-name {wildcards.model}"
            " --scenario {params.scenarios} --spec {params.spec:q} --fixtures {input.data}"
            " --outdir {params.outdir} --stats {output.stats} 2> {log}"

else:

    rule helm_run:
        input:
            model=lambda w: model_dir(w.model),
            data=HELM_DATA,
        output:
            stats=f"{R}/eval/helm/{{model}}/{{scenario}}.json",
        log:
            log_path("helm_run", "model", "scenario"),
        benchmark:
            bench_path("helm_run", "model", "scenario")
        wildcard_constraints:
            scenario="|".join(HELM_SCENARIOS),
        priority: HELM_STAGE
        container:
            rule_image("helm_run")
        threads: nthreads("helm_run")
        resources:
            **res("helm_run"),
        params:
            spec=job_spec("helm_run"),
            outdir=lambda w: f"{W}/helm/{w.model}/{w.scenario}",
        shell:
            "prefbias helm-run --model-dir {input.model} --model-name {wildcards.model}"
            " --scenario {wildcards.scenario} --spec {params.spec:q} --fixtures {input.data}"
            " --outdir {params.outdir} --stats {output.stats} 2> {log}"


rule helm_summarize:
    input:
        [f"{R}/eval/helm/{m}/{s}.json" for m in HELM_MODELS for s in HELM_SCENARIOS],
    output:
        [f"{R}/eval/helm/{g}.csv" for g in HELM_GROUPS],
        summary=f"{R}/eval/helm/summary.csv",
    log:
        log_path("helm_summarize"),
    benchmark:
        bench_path("helm_summarize")
    container:
        rule_image("helm_summarize")
    threads: nthreads("helm_summarize")
    resources:
        **res("helm_summarize"),
    params:
        spec=lambda w: spec("seeds", "sft", "dpo", "styles", "orpo", "report.bootstrap"),
        stats_dir=lambda w, output: os.path.dirname(output.summary),
    shell:
        "prefbias helm-summarize --stats-dir {params.stats_dir} --spec {params.spec:q}"
        " --outdir {params.stats_dir} 2> {log}"
