# Evaluations: LLM judge (stylized-dpo §5.1.1), reward-model win rate (Table 3), sycophancy tasks
# (saa-orpo §3). Model lists come from prefbias.plan; numbers from the config sections passed as
# --spec (a changed judge prompt re-runs judge jobs only). API answers are cached under
# W/cache/<kind>/ so a re-run makes no requests.
JUDGE = config["judge"]
SECOND_JUDGE = JUDGE.get("second_judge")
# judged and scored by the reward model: not the random-weight stand-ins when
# report.skip_random_stand_in_evals (their rows read "not run"; HELM evaluates every model)
STYLIZED = plan.evaluated_stylized_ids(config)
SYCOPHANCY = plan.sycophancy_ids(config)

# reward_winrate.pairs (stylized-dpo §3.3.1: DPO vs SFT, ...): prefbias.evaluation.winrate
REWARD_PAIRS = plan.reward_pair_rows(config)

EVALUATE_TARGETS = (
    [f"{R}/eval/judge/{m}.summary.json" for m in STYLIZED]
    + [f"{R}/eval/reward/{m}.json" for m in STYLIZED]
    + sorted({f"{R}/{p['file']}" for p in REWARD_PAIRS if "file" in p})
    + [f"{R}/eval/sycophancy/{m}/answer_scores.json" for m in SYCOPHANCY]
    + [f"{R}/eval/sycophancy/{m}/are_you_sure_scores.json" for m in SYCOPHANCY]
    + ([f"{R}/eval/judge_agreement.json"] if SECOND_JUDGE and STYLIZED else [])
    + ([f"{R}/eval/judge_check.json"] if JUDGE.get("check_set") else [])
)


rule judge:
    input:
        gens=f"{R}/generations/{{model}}/judge.jsonl",
        judge_model=lambda w: _local_model(judge_block(w.judge)),
    output:
        rows=f"{R}/eval/{{judge}}/{{model}}.jsonl",
        summary=f"{R}/eval/{{judge}}/{{model}}.summary.json",
    log:
        log_path("judge", "judge", "model"),
    benchmark:
        bench_path("judge", "judge", "model")
    wildcard_constraints:
        judge="|".join(plan.JUDGE_WHICH),
    container:
        rule_image("judge")
    threads: nthreads("judge")
    resources:
        **res("judge"),
    params:
        spec=job_spec("judge"),
        which=lambda w: plan.JUDGE_WHICH[w.judge],
        judge_dir=lambda w: _judge_dir_arg(judge_block(w.judge)),
        cache=f"{W}/cache/judge",
    shell:
        "prefbias judge --which {params.which} --spec {params.spec:q}"
        " --generations {input.gens} --out {output.rows} --summary {output.summary}"
        " --model {wildcards.model} {params.judge_dir} --cache-dir {params.cache} 2> {log}"


rule judge_check:
    input:
        pairs=lambda w: raw_files(JUDGE["check_set"])[0],  # the dataset's (first) split
        judge_model=_local_model(judge_block("judge")),
    output:
        rows=f"{R}/eval/judge_check.jsonl",
        summary=f"{R}/eval/judge_check.json",
    log:
        log_path("judge_check"),
    benchmark:
        bench_path("judge_check")
    container:
        rule_image("judge_check")
    threads: nthreads("judge_check")
    resources:
        **res("judge_check"),
    params:
        spec=job_spec("judge_check"),
        judge_dir=_judge_dir_arg(judge_block("judge")),
        cache=f"{W}/cache/judge",
    shell:
        "prefbias judge-check --spec {params.spec:q} --pairs {input.pairs}"
        " --out {output.rows} --summary {output.summary} {params.judge_dir}"
        " --cache-dir {params.cache} 2> {log}"


rule judge_agreement:
    input:
        first=[f"{R}/eval/judge/{m}.jsonl" for m in STYLIZED],
        second=[f"{R}/eval/judge_second/{m}.jsonl" for m in STYLIZED],
    output:
        f"{R}/eval/judge_agreement.json",
    log:
        log_path("judge_agreement"),
    benchmark:
        bench_path("judge_agreement")
    container:
        rule_image("judge_agreement")
    threads: nthreads("judge_agreement")
    resources:
        **res("judge_agreement"),
    params:
        spec=job_spec("judge_agreement"),
    shell:
        "prefbias judge-agreement --spec {params.spec:q} --first {input.first}"
        " --second {input.second} --out {output} 2> {log}"


rule reward_winrate:
    input:
        gens=f"{R}/generations/{{model}}/reward.jsonl",
        baseline=f"{R}/generations/{config['reward_winrate']['baseline']}/reward.jsonl",
        reward_model=_local_model(
            {
                "backend": config["reward_winrate"]["backend"],
                "model": config["reward_winrate"]["reward_model"],
            }
        ),
    output:
        f"{R}/eval/reward/{{model}}.json",
    log:
        log_path("reward_winrate", "model"),
    benchmark:
        bench_path("reward_winrate", "model")
    container:
        rule_image("reward_winrate")
    threads: nthreads("reward_winrate")
    resources:
        **res("reward_winrate"),
    params:
        spec=job_spec("reward_winrate"),
        cache=f"{W}/cache/reward",
    shell:
        "prefbias reward-winrate --spec {params.spec:q} --generations {input.gens}"
        " --baseline-generations {input.baseline} --model {wildcards.model}"
        " --reward-model-dir {input.reward_model} --cache-dir {params.cache}"
        " --out {output} 2> {log}"


# a pair of reward_winrate.pairs whose baseline is not Table 3's (those reuse Table 3's file)
use rule reward_winrate as reward_winrate_pair with:
    input:
        gens=f"{R}/generations/{{model}}/reward.jsonl",
        baseline=f"{R}/generations/{{baseline}}/reward.jsonl",
        reward_model=_local_model(
            {
                "backend": config["reward_winrate"]["backend"],
                "model": config["reward_winrate"]["reward_model"],
            }
        ),
    output:
        f"{R}/eval/reward_vs/{{baseline}}/{{model}}.json",
    log:
        log_path("reward_winrate_pair", "baseline", "model"),
    benchmark:
        bench_path("reward_winrate_pair", "baseline", "model")
    wildcard_constraints:
        baseline=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    params:
        spec=job_spec("reward_winrate_pair"),
        cache=f"{W}/cache/reward",


rule sycophancy_answer:
    input:
        data=f"{W}/data/sycophancy/answer.jsonl",
        model=lambda w: model_dir(w.model),
    output:
        f"{R}/eval/sycophancy/{{model}}/answer_dialogues.jsonl",
    log:
        log_path("sycophancy_answer", "model"),
    benchmark:
        bench_path("sycophancy_answer", "model")
    container:
        rule_image("sycophancy_answer")
    threads: nthreads("sycophancy_answer")
    resources:
        **res("sycophancy_answer"),
    params:
        spec=job_spec("sycophancy_answer"),
    shell:
        "prefbias sycophancy-answer --spec {params.spec:q} --data {input.data}"
        " --model-dir {input.model} --model {wildcards.model} --out {output} 2> {log}"


rule sycophancy_ays:
    input:
        data=f"{W}/data/sycophancy/are_you_sure.jsonl",
        model=lambda w: model_dir(w.model),
    output:
        f"{R}/eval/sycophancy/{{model}}/are_you_sure_dialogues.jsonl",
    log:
        log_path("sycophancy_ays", "model"),
    benchmark:
        bench_path("sycophancy_ays", "model")
    container:
        rule_image("sycophancy_ays")
    threads: nthreads("sycophancy_ays")
    resources:
        **res("sycophancy_ays"),
    params:
        spec=job_spec("sycophancy_ays"),
    shell:
        "prefbias sycophancy-ays --spec {params.spec:q} --data {input.data}"
        " --model-dir {input.model} --model {wildcards.model} --out {output} 2> {log}"


# Grading is its own job: generation needs a GPU and no internet, the paper's LLM grader needs
# the internet and no GPU (a localrule then, prefbias.hpc.needs).
rule sycophancy_grade:
    input:
        data=f"{W}/data/sycophancy/{{task}}.jsonl",
        dialogues=f"{R}/eval/sycophancy/{{model}}/{{task}}_dialogues.jsonl",
    output:
        rows=f"{R}/eval/sycophancy/{{model}}/{{task}}.jsonl",
        scores=f"{R}/eval/sycophancy/{{model}}/{{task}}_scores.json",
    log:
        log_path("sycophancy_grade", "model", "task"),
    benchmark:
        bench_path("sycophancy_grade", "model", "task")
    wildcard_constraints:
        task="answer|are_you_sure",
    container:
        rule_image("sycophancy_grade")
    threads: nthreads("sycophancy_grade")
    resources:
        **res("sycophancy_grade"),
    params:
        spec=job_spec("sycophancy_grade"),
        cache=f"{W}/cache/grader",
    shell:
        "prefbias sycophancy-grade --task {wildcards.task} --spec {params.spec:q}"
        " --data {input.data} --dialogues {input.dialogues} --out {output.rows}"
        " --scores {output.scores} --cache-dir {params.cache} 2> {log}"
