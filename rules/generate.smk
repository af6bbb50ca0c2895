# Evaluation prompt sets (judge, reward) drawn from the UltraFeedback test pairs, and generations
# of every evaluated stylized-dpo model on them (stylized-dpo §5.1.1; not the random-weight
# stand-ins when report.skip_random_stand_in_evals: plan.eval_skipped).
GEN_PROMPTSETS = list(config["generation"]["prompt_sets"])

GENERATE_TARGETS = sorted(
    {
        f"{R}/generations/{m}/{ps}.jsonl"
        for m in plan.evaluated_stylized_ids(config)
        for ps in GEN_PROMPTSETS
    }
)


rule eval_prompts:
    input:
        f"{W}/data/prefs/{config['generation']['prompt_source']}/test.jsonl",
    output:
        f"{W}/data/prompts/{{promptset}}.jsonl",
    log:
        log_path("eval_prompts", "promptset"),
    benchmark:
        bench_path("eval_prompts", "promptset")
    container:
        rule_image("eval_prompts")
    threads: nthreads("eval_prompts")
    resources:
        **res("eval_prompts"),
    params:
        spec=job_spec("eval_prompts"),
    shell:
        "prefbias eval-prompts --prefs {input} --promptset {wildcards.promptset}"
        " --spec {params.spec:q} --out {output} 2> {log}"


rule generate:
    input:
        prompts=f"{W}/data/prompts/{{promptset}}.jsonl",
        model=lambda w: model_dir(w.model),
    output:
        f"{R}/generations/{{model}}/{{promptset}}.jsonl",
    log:
        log_path("generate", "model", "promptset"),
    benchmark:
        bench_path("generate", "model", "promptset")
    container:
        rule_image("generate")
    threads: nthreads("generate")
    resources:
        **res("generate"),
    params:
        spec=job_spec("generate"),
    shell:
        "prefbias generate --model-dir {input.model} --model-name {wildcards.model}"
        " --prompts {input.prompts} --spec {params.spec:q} --out {output} 2> {log}"
