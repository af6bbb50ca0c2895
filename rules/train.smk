# Training: SFT -> reference log-probs -> DPO (stylized-dpo), ORPO+LoRA (saa-orpo).
# Which files a model needs comes from prefbias.plan.rule_inputs (built on
# prefbias.plan.trained_models); numbers come from the config sections passed as --spec.
# Checkpoints go to W/ckpt/<model>/ (outside the outputs); a re-run resumes from them. `exec`:
# Slurm's pre-emption SIGTERM reaches the trainer itself, which checkpoints and exits (no bash
# in between that would die first).
# Multi-GPU: prefix the shell command with `accelerate launch --num_processes N -m prefbias.cli`
# (DDP; ORPO's grad_accum = effective_batch_size / (batch_size * N)). 7B ORPO on small GPUs:
# `accelerate launch --use_fsdp --fsdp_sharding_strategy FULL_SHARD
#  --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP` (LoRA params only are trained; checkpoints
# then need accelerate's FSDP state-dict gathering, not yet wired).

# Training curves: TensorBoard event files are outputs (R/train/<model>/tb/, frozen with the rest);
# W&B / MLflow per config `tracking` (prefbias.train.tracking), their files in W/tracking/.

TRAINED = plan.trained_models(config)
TRAIN_TARGETS = [f"{R}/train/{m}/summary.json" for m in TRAINED]


rule train_sft:
    input:
        unpack(_train_inputs),
    output:
        model=directory(f"{W}/models/trained/{{model}}"),
        metrics=f"{R}/train/{{model}}/metrics.jsonl",
        summary=f"{R}/train/{{model}}/summary.json",
        eval_examples=f"{R}/train/{{model}}/eval_examples.jsonl",
        tb=directory(f"{R}/train/{{model}}/tb"),
    log:
        log_path("train_sft", "model"),
    benchmark:
        bench_path("train_sft", "model")
    wildcard_constraints:
        model=r"sft-s\d+",
    priority: CRITICAL_PATH
    container:
        rule_image("train_sft")
    threads: nthreads("train_sft")
    resources:
        **res("train_sft"),
    params:
        spec=job_spec("train_sft"),
        seed=lambda w: plan.model_seed(config, w.model),
        ckpt=lambda w: f"{W}/ckpt/{w.model}",
        tracking=lambda w: json.dumps(config["tracking"], sort_keys=True),
        tracking_dir=f"{W}/tracking",
    shell:
        "exec prefbias train-sft --model-id {wildcards.model} --init {input.init}"
        " --train {input.train} --eval {input.eval} --spec {params.spec:q}"
        " --seed {params.seed} --out {output.model} --metrics {output.metrics}"
        " --summary {output.summary} --eval-examples {output.eval_examples}"
        " --ckpt {params.ckpt} --tb {output.tb} --tracking {params.tracking:q}"
        " --tracking-dir {params.tracking_dir} 2> {log}"


rule ref_logps:
    input:
        unpack(_refs_inputs),
    output:
        f"{W}/refs/{{refmodel}}/{{prefset}}/{{split}}.pt",
    log:
        log_path("ref_logps", "refmodel", "prefset", "split"),
    benchmark:
        bench_path("ref_logps", "refmodel", "prefset", "split")
    wildcard_constraints:
        refmodel=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    priority: CRITICAL_PATH
    container:
        rule_image("ref_logps")
    threads: nthreads("ref_logps")
    resources:
        **res("ref_logps"),
    params:
        spec=job_spec("ref_logps"),
    shell:
        "prefbias ref-logps --model {input.model} --prefs {input.prefs}"
        " --spec {params.spec:q} --out {output} 2> {log}"


rule train_dpo:
    input:
        unpack(_train_inputs),
    output:
        model=directory(f"{W}/models/trained/{{model}}"),
        metrics=f"{R}/train/{{model}}/metrics.jsonl",
        summary=f"{R}/train/{{model}}/summary.json",
        eval_examples=f"{R}/train/{{model}}/eval_examples.jsonl",
        tb=directory(f"{R}/train/{{model}}/tb"),
    log:
        log_path("train_dpo", "model"),
    benchmark:
        bench_path("train_dpo", "model")
    wildcard_constraints:
        model=r"dpo-[a-z0-9_-]+-s\d+",
    priority: CRITICAL_PATH
    container:
        rule_image("train_dpo")
    threads: nthreads("train_dpo")
    resources:
        **res("train_dpo"),
    params:
        spec=job_spec("train_dpo"),
        seed=lambda w: plan.model_seed(config, w.model),
        ckpt=lambda w: f"{W}/ckpt/{w.model}",
        tracking=lambda w: json.dumps(config["tracking"], sort_keys=True),
        tracking_dir=f"{W}/tracking",
        eval=_dpo_eval_args,
    shell:
        "exec prefbias train-dpo --model-id {wildcards.model} --init {input.init}"
        " --train {input.train} --train-refs {input.train_refs}"
        " {params.eval} --spec {params.spec:q} --seed {params.seed} --out {output.model}"
        " --metrics {output.metrics} --summary {output.summary}"
        " --eval-examples {output.eval_examples} --ckpt {params.ckpt} --tb {output.tb}"
        " --tracking {params.tracking:q} --tracking-dir {params.tracking_dir} 2> {log}"


rule train_orpo:
    input:
        unpack(_train_inputs),
    output:
        model=directory(f"{W}/models/trained/{{model}}"),
        metrics=f"{R}/train/{{model}}/metrics.jsonl",
        summary=f"{R}/train/{{model}}/summary.json",
        eval_examples=f"{R}/train/{{model}}/eval_examples.jsonl",
        tb=directory(f"{R}/train/{{model}}/tb"),
    log:
        log_path("train_orpo", "model"),
    benchmark:
        bench_path("train_orpo", "model")
    wildcard_constraints:
        model=r"orpo-.+-s\d+",
    container:
        rule_image("train_orpo")
    threads: nthreads("train_orpo")
    resources:
        **res("train_orpo"),
    params:
        spec=job_spec("train_orpo"),
        seed=lambda w: plan.model_seed(config, w.model),
        ckpt=lambda w: f"{W}/ckpt/{w.model}",
        tracking=lambda w: json.dumps(config["tracking"], sort_keys=True),
        tracking_dir=f"{W}/tracking",
    shell:
        "exec prefbias train-orpo --model-id {wildcards.model} --init {input.init}"
        " --train {input.train} --spec {params.spec:q} --seed {params.seed}"
        " --out {output.model} --metrics {output.metrics} --summary {output.summary}"
        " --eval-examples {output.eval_examples} --ckpt {params.ckpt} --tb {output.tb}"
        " --tracking {params.tracking:q} --tracking-dir {params.tracking_dir} 2> {log}"
