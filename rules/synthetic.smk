# Style variants of UltraFeedback (stylized-dpo §3.2.2): the rewriter model rewrites every chosen
# answer in a style; scattered into styles.shards resumable shards, gathered into preference sets
# W/data/prefs/ultrafeedback-<style>/{train,test}.jsonl + stats.json.
STYLE_SOURCE = config["styles"]["source_prefset"]
STYLE_SPLITS = ["train", "test"]
STYLE_NSHARDS = config["styles"]["shards"]
STYLE_REWRITER = config["styles"]["rewriter"]

SYNTHETIC_TARGETS = [
    f"{W}/data/prefs/{plan.style_prefset(s)}/{split}.jsonl"
    for s in STYLES
    for split in STYLE_SPLITS
]


rule style_shard:
    input:
        prefs=expand(
            f"{W}/data/prefs/{STYLE_SOURCE}/{{split}}.jsonl", split=STYLE_SPLITS
        ),
        model=model_dir(STYLE_REWRITER),
    output:
        f"{W}/synthetic/{{style}}/shard-{{i}}-of-{{n}}.jsonl",
    log:
        log_path("style_shard", "style", "i", "n"),
    benchmark:
        bench_path("style_shard", "style", "i", "n")
    wildcard_constraints:
        i=r"\d+",
        n=r"\d+",
    priority: CRITICAL_PATH
    container:
        rule_image("style_shard")
    threads: nthreads("style_shard")
    resources:
        **res("style_shard"),
    params:
        spec=job_spec("style_shard"),
        prefs=lambda w, input: " ".join(
            f"{s}={p}" for s, p in zip(STYLE_SPLITS, input.prefs)
        ),
        rewriter=STYLE_REWRITER,
    shell:
        "prefbias style-shard --style {wildcards.style} --shard {wildcards.i}"
        " --num-shards {wildcards.n} --prefs {params.prefs} --model-dir {input.model}"
        " --model-name {params.rewriter} --spec {params.spec:q} --out {output} 2> {log}"


rule style_gather:
    input:
        expand(
            f"{W}/synthetic/{{{{style}}}}/shard-{{i}}-of-{STYLE_NSHARDS}.jsonl",
            i=range(STYLE_NSHARDS),
        ),
    output:
        data=expand(
            f"{W}/data/prefs/ultrafeedback-{{{{style}}}}/{{split}}.jsonl",
            split=STYLE_SPLITS,
        ),
        stats=f"{W}/data/prefs/ultrafeedback-{{style}}/stats.json",
    log:
        log_path("style_gather", "style"),
    benchmark:
        bench_path("style_gather", "style")
    priority: CRITICAL_PATH
    container:
        rule_image("style_gather")
    threads: nthreads("style_gather")
    resources:
        **res("style_gather"),
    params:
        spec=job_spec("style_gather"),
        splits=" ".join(STYLE_SPLITS),
        outdir=lambda w, output: os.path.dirname(output.stats),
    shell:
        "prefbias style-gather --style {wildcards.style} --shards {input}"
        " --spec {params.spec:q} --splits {params.splits} --out-dir {params.outdir} 2> {log}"
