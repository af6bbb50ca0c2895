# Raw data and processed data sets (issue 2). Logic lives in prefbias.data; see
# docs/ARCHITECTURE.md for the paths and record schemas.


SFT_DATASET = config["sft"]["dataset"]
SFT_SPLITS = dataset_splits(SFT_DATASET)
UF_SPLITS = dataset_splits("ultrafeedback")

DATA_TARGETS = (
    [f"{W}/data/sft/{s}.jsonl" for s in SFT_SPLITS]
    + [f"{W}/data/sft/{s}.stats.json" for s in SFT_SPLITS]
    + [f"{W}/data/prefs/ultrafeedback/{s}.jsonl" for s in UF_SPLITS]
    + [
        f"{W}/data/prefs/dpo_mix_en/train.jsonl",
        f"{W}/data/prefs/saa/train.jsonl",
        f"{W}/data/sycophancy/answer.jsonl",
        f"{W}/data/sycophancy/are_you_sure.jsonl",
    ]
)


# Downloads run on the submit host (compute nodes may have no internet; a localrule by its entry
# in prefbias.rule_table), in the train image.
rule fetch_dataset:
    output:
        f"{W}/raw/{{dataset}}/{{split}}.jsonl",
    log:
        log_path("fetch_dataset", "dataset", "split"),
    benchmark:
        bench_path("fetch_dataset", "dataset", "split")
    wildcard_constraints:
        dataset="|".join(config["datasets"]),
        split="|".join(
            sorted({s for d in config["datasets"] for s in dataset_splits(d)})
        ),
    container:
        rule_image("fetch_dataset")
    threads: nthreads("fetch_dataset")
    resources:
        **res("fetch_dataset"),
    params:
        spec=job_spec("fetch_dataset"),
        outdir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "prefbias fetch-dataset --spec {params.spec:q} --name {wildcards.dataset}"
        " --split {wildcards.split} --outdir {params.outdir} 2> {log}"


rule sft_data:
    input:
        raw=f"{W}/raw/{SFT_DATASET}/{{split}}.jsonl",
        tokenizer=model_dir(config["sft"]["base_model"]),
    output:
        data=f"{W}/data/sft/{{split}}.jsonl",
        stats=f"{W}/data/sft/{{split}}.stats.json",
    log:
        log_path("sft_data", "split"),
    benchmark:
        bench_path("sft_data", "split")
    priority: CRITICAL_PATH
    container:
        rule_image("sft_data")
    threads: nthreads("sft_data")
    resources:
        **res("sft_data"),
    params:
        max_prompt=config["sft"]["max_prompt_tokens"],
        max_completion=config["sft"]["max_completion_tokens"],
    shell:
        "prefbias sft-data --input {input.raw} --tokenizer {input.tokenizer}"
        " --max-prompt-tokens {params.max_prompt}"
        " --max-completion-tokens {params.max_completion} --out {output.data} 2> {log}"


rule uf_prefs:
    input:
        f"{W}/raw/ultrafeedback/{{split}}.jsonl",
    output:
        f"{W}/data/prefs/ultrafeedback/{{split}}.jsonl",
    log:
        log_path("uf_prefs", "split"),
    benchmark:
        bench_path("uf_prefs", "split")
    container:
        rule_image("uf_prefs")
    threads: nthreads("uf_prefs")
    resources:
        **res("uf_prefs"),
    shell:
        "prefbias prefs --kind ultrafeedback --input {input} --out {output} 2> {log}"


rule dpo_mix_prefs:
    input:
        f"{W}/raw/dpo_mix_en/train.jsonl",
    output:
        f"{W}/data/prefs/dpo_mix_en/train.jsonl",
    log:
        log_path("dpo_mix_prefs"),
    benchmark:
        bench_path("dpo_mix_prefs")
    container:
        rule_image("dpo_mix_prefs")
    threads: nthreads("dpo_mix_prefs")
    resources:
        **res("dpo_mix_prefs"),
    shell:
        "prefbias prefs --kind llamafactory --source dpo_mix_en --input {input} --out {output}"
        " 2> {log}"


rule saa:
    input:
        bct=f"{W}/raw/bct/train.jsonl",
        control=f"{W}/raw/bct_control/train.jsonl",
    output:
        data=f"{W}/data/prefs/saa/train.jsonl",
        stats=f"{W}/data/prefs/saa/saa.stats.json",
    log:
        log_path("saa"),
    benchmark:
        bench_path("saa")
    container:
        rule_image("saa")
    threads: nthreads("saa")
    resources:
        **res("saa"),
    params:
        n_correct=config["saa"]["n_correct"],
        n_incorrect=config["saa"]["n_incorrect"],
        seed=config["saa"]["seed"],
    shell:
        "prefbias saa --bct {input.bct} --control {input.control}"
        " --n-correct {params.n_correct} --n-incorrect {params.n_incorrect}"
        " --seed {params.seed} --out {output.data} --stats {output.stats} 2> {log}"


rule sycophancy_data:
    input:
        answer=f"{W}/raw/sycophancy_answer/test.jsonl",
        are_you_sure=f"{W}/raw/sycophancy_are_you_sure/test.jsonl",
    output:
        answer=f"{W}/data/sycophancy/answer.jsonl",
        are_you_sure=f"{W}/data/sycophancy/are_you_sure.jsonl",
    log:
        log_path("sycophancy_data"),
    benchmark:
        bench_path("sycophancy_data")
    container:
        rule_image("sycophancy_data")
    threads: nthreads("sycophancy_data")
    resources:
        **res("sycophancy_data"),
    params:
        spec=job_spec("sycophancy_data"),
        outdir=lambda w, output: os.path.dirname(output.answer),
    shell:
        "prefbias sycophancy-sets --answer {input.answer}"
        " --are-you-sure {input.are_you_sure} --spec {params.spec:q}"
        " --outdir {params.outdir} 2> {log}"
