# HELM (stylized-dpo §5.1.2, Tables 4-8): crfm-helm 0.5.16 in its own environment (.venv-helm,
# scripts/setup-helm-env.sh; helm.sif on the cluster). Scenario data is staged once
# (helm_stage); helm_run evaluates the six stylized models of every seed, then one summary over
# all seeds. Logic: prefbias.evaluation.helm_*.
HELM_SCENARIOS = list(config["helm"]["scenarios"])
HELM_MODELS = plan.stylized_ids(config)
HELM_GROUPS = config["helm"]["groups"]

HELM_TARGETS = [f"{R}/eval/helm/{g}.csv" for g in HELM_GROUPS] + [
    f"{R}/eval/helm/summary.csv"
]
HELM_DATA = f"{W}/helm/data"


# HELM's own downloaders for every configured scenario, on the login node (compute nodes are
# often offline; a localrule by its entry in prefbias.rule_table); with helm.fixtures they find
# every file and download nothing.
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
        spec=job_spec("helm_stage"),
    shell:
        "prefbias helm-stage --spec {params.spec:q} --out {output} 2> {log}"


# helm.jobs: per_scenario -> one job per (model, scenario) (the cluster); per_model -> one job
# per model running every scenario in one helm-run (tiny/local runs: HELM's start-up and the
# model load paid once per model). Both write one stats file per (model, scenario).
HELM_PER_MODEL = config["helm"]["jobs"] == "per_model"
HELM_JOB_WILDCARDS = ["model"] if HELM_PER_MODEL else ["model", "scenario"]
HELM_SCENARIO_RE = "|".join(HELM_SCENARIOS)


rule helm_run:
    input:
        model=lambda w: model_dir(w.model),
        data=HELM_DATA,
    output:
        stats=(
            [f"{R}/eval/helm/{{model}}/{s}.json" for s in HELM_SCENARIOS]
            if HELM_PER_MODEL
            else f"{R}/eval/helm/{{model}}/{{scenario,{HELM_SCENARIO_RE}}}.json"
        ),
    log:
        log_path("helm_run", *HELM_JOB_WILDCARDS),
    benchmark:
        bench_path("helm_run", *HELM_JOB_WILDCARDS)
    priority: HELM_STAGE
    container:
        rule_image("helm_run")
    threads: nthreads("helm_run")
    resources:
        **res("helm_run"),
    params:
        spec=job_spec("helm_run"),
        scenarios=lambda w: w.get("scenario") or HELM_SCENARIOS,
        outdir=lambda w: f"{W}/helm/{w.model}/{w.get('scenario') or 'all'}",
    shell:
        "prefbias helm-run --model-dir {input.model} --model-name {wildcards.model}"
        " --scenario {params.scenarios} --spec {params.spec:q} --fixtures {input.data}"
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
        spec=job_spec("helm_summarize"),
        stats_dir=lambda w, output: os.path.dirname(output.summary),
    shell:
        "prefbias helm-summarize --stats-dir {params.stats_dir} --spec {params.spec:q}"
        " --outdir {params.stats_dir} 2> {log}"
