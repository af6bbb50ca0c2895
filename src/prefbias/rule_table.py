"""What each rule needs, one entry per rule: the ONE table the rules and the HPC code read.

A rule's entry says which config its job reads (its ``--spec``: :func:`prefbias.jobspec.job_spec`),
which config section's ``backend`` picks its image (:func:`prefbias.hpc.needs.image_name`, the
``container:`` of every rule in ``rules/common.smk``), a fixed image and the packages its command
needs (``tests/test_containers.py`` checks them against ``containers/*.def``), whether it uses a
GPU in the paper configuration, the ``resources:`` entry it shares, whether it is a localrule
(``rules/common.smk`` declares them from here), and what it may reach on the internet
(downloads; HTTP APIs and the config key naming their key's environment variable: preflight).
Config keys a few rules pass as single flags (``sft_data``, ``saa``, the trainers' ``tracking``)
stay in their ``.smk`` params. ``docs/HPC.md``'s per-rule table is rendered from it
(``prefbias resources --needs --markdown``). A new rule touches its ``.smk`` file and this
table; ``tests/test_rule_table.py`` checks that the table and Snakemake's ``workflow.rules``
hold the same rules.

Plain data: :class:`Reads` lists a section's keys (``include`` / ``exclude``); a small named
function only where a wildcard selects a sub-block (``styles.descriptions[{style}]``, a HELM
scenario, the first or second judge, a DPO group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefbias import plan

Spec = dict[str, Any]


def _without(block: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in keys}


@dataclass(frozen=True)
class Reads:
    """The config a job reads: ``section`` (all of it, only ``include``, or all but ``exclude``),
    with ``select(config, **wildcards)`` merged over it (the sub-blocks a wildcard picks);
    ``sections``: several sections or dotted subsections, nested as in the config."""

    section: str | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    select: Callable[..., Spec] | None = None
    sections: tuple[str, ...] = ()

    def spec(self, config: dict[str, Any], **wc: str) -> Spec:
        if self.sections:
            out: Spec = {}
            for key in self.sections:
                *parents, leaf = key.split(".")
                node, target = config, out
                for p in parents:
                    node, target = node[p], target.setdefault(p, {})
                target[leaf] = node[leaf]
            return out
        block = config[self.section] if self.section else {}
        if self.include is not None:
            block = {k: block[k] for k in self.include}
        block = _without(block, *self.exclude)
        if self.select is None:
            return block
        return {**block, **self.select(config, **wc)}


@dataclass(frozen=True)
class Api:
    """An HTTP API the rule calls: when the rule's backend is ``openai`` (``when`` None), or when
    the config key ``when`` (dotted) equals ``value``. The key's environment variable is named by
    the first set key of ``key_env`` (dotted), else ``OPENAI_API_KEY``."""

    key_env: tuple[str, ...]
    when: str | None = None
    value: str = "openai"


@dataclass(frozen=True)
class Rule:
    #: the config the job reads (its --spec): Reads, or a function (config, **wildcards) -> spec
    reads: Reads | Callable[..., Spec] | None = None
    #: config section whose ``backend`` picks the image and packages (prefbias.plan.section_backend)
    backend: str | None = None
    #: image whatever the config (a key of config ``containers:``); None: the backend's, or train
    image: str | None = None
    #: pip distributions the command needs whatever its backend
    packages: tuple[str, ...] = ()
    #: runs a command in a container (False: a ``run:`` block in Snakemake's own process)
    container: bool = True
    #: uses a GPU in the paper configuration (config.yaml ``resources:`` gives it one)
    gpu: bool = False
    #: the ``resources:`` entry it shares (None: its own name)
    resources: str | None = None
    #: runs on the login node, in the main Snakemake process (``localrules``: rules/common.smk)
    local: bool = False
    #: downloads from the internet (so a localrule as well)
    download: bool = False
    #: HTTP APIs it may call (internet and a key)
    apis: tuple[Api, ...] = ()
    #: needs HF_TOKEN when a configured hub model is gated
    hf_token: bool = False


# ------------------------------------------------------------------- sub-blocks a wildcard picks
def _dataset(config: dict[str, Any], dataset: str, **_: str) -> Spec:
    return config["datasets"][dataset]


def _model_build(config: dict[str, Any], model: str, **_: str) -> Spec:
    """The keys of the model's entry that change the bytes written, never its report labels."""
    return plan.model_build_spec(config, model)


def _style_description(config: dict[str, Any], style: str, **_: str) -> Spec:
    """A style's rewrite reads its own description: a fourth style reruns no other style."""
    return {"descriptions": {style: config["styles"]["descriptions"][style]}}


def _prompt_set(config: dict[str, Any], promptset: str, **_: str) -> Spec:
    sets = config["generation"]["prompt_sets"]
    return {"prompt_sets": {promptset: sets[promptset]} if promptset in sets else {}}


def _dpo_group(config: dict[str, Any], model: str, **_: str) -> Spec:
    """The DPO of a model reads its group's block (ultrafeedback or styles), not the other's,
    with the model's reading laid over it (``other_readings``); the reference model is
    structure (an input)."""
    return _without(plan.dpo_model_spec(config, model), "reference")


def _helm(config: dict[str, Any], scenario: str | None = None, **_: str) -> Spec:
    """A HELM job reads its scenario's run spec (``helm.jobs: per_model``: every scenario);
    the summary groups and the cost arithmetic (resources) are not the job's."""
    h = _without(config["helm"], "groups", "cost")
    if scenario is None:
        return h
    out = {**_without(h, "scenarios"), "scenarios": {scenario: h["scenarios"][scenario]}}
    if scenario != "mmlu":
        out.pop("mmlu_subjects", None)
    return out


#: keys of the judge section only the API judge reads (the client's settings, the API's
#: log-probs and re-asking); a local (hf) judge decodes greedily and reads none of them
JUDGE_API_KEYS = ("base_url", "api_key_env", "max_retries", "max_concurrency",
                  "requests_per_minute", "timeout_s", "retry_backoff_s", "max_backoff_s",
                  "max_retry_after_s", "price_per_1m_tokens", "top_logprobs",
                  "max_parse_retries", "temperature")


def _judge(config: dict[str, Any], judge: str = "judge", **_: str) -> Spec:
    """The first judge never reads the second's block; a local judge no API keys; the yes_no
    mode its questions, not the B.1 prompt (the other modes the reverse)."""
    block = plan.resolve_judge_spec(config["judge"], judge)
    j = _without(config["judge"], "check_set")  # which rows to check: the rule's input
    if plan.JUDGE_WHICH[judge] == "primary":
        j = _without(j, "second_judge")
    if block["backend"] == "hf":
        j = _without(j, *JUDGE_API_KEYS)
    return _without(j, "prompt" if block["score_mode"] == "yes_no" else "yes_no")


def _judge_agreement(config: dict[str, Any], **_: str) -> Spec:
    """Which judges and dimensions: the scores themselves are its inputs."""
    j = config["judge"]
    return {"dimensions": j["dimensions"], "model": j["model"],
            "second_judge": {"model": (j.get("second_judge") or {}).get("model")}}


def scoring_spec(section: dict[str, Any], baseline: str | None = None) -> dict[str, Any]:
    """The ``--spec`` of one reward win-rate job: ``reward_winrate`` without ``pairs`` (editing
    the pair list never re-runs a scored pair), with ``baseline`` set to the pair's baseline."""
    spec = {k: v for k, v in section.items() if k != "pairs"}
    if baseline is not None:
        spec["baseline"] = baseline
    return spec


def _reward(config: dict[str, Any], baseline: str | None = None, **_: str) -> Spec:
    return scoring_spec(config["reward_winrate"], baseline)


def _sycophancy_backend(config: dict[str, Any], model: str, **_: str) -> Spec:
    """A dialogue job reads the backend its model runs on (:func:`prefbias.plan.section_backend`),
    never the per-model map: a model's jobs rerun only when its own backend changes."""
    return {"backend": plan.section_backend(config, "sycophancy", model)}


#: sycophancy keys no dialogue job reads (grading's; the per-model map: _sycophancy_backend)
_SYC_NOT_READ = ("grader", "bootstrap", "backend_by_model")
_AYS = ("are_you_sure_challenge", "are_you_sure_letter_followup", "are_you_sure_free_followup")
_OPENAI = Api(("judge.api_key_env",))
_REWARD = Rule(reads=_reward, backend="reward_winrate", gpu=True, resources="reward_winrate",
               apis=(Api(("reward_winrate.api_key_env",)),))

#: rule -> what it needs (every rule of the workflow that runs something: tests/test_rule_table.py)
RULES: dict[str, Rule] = {
    # data (rules/data.smk, models.smk)
    "fetch_dataset": Rule(reads=_dataset, download=True, local=True),
    "fetch_model": Rule(reads=_model_build, download=True, local=True, hf_token=True),
    "build_tiny_model": Rule(reads=_model_build),
    "sft_data": Rule(),
    "uf_prefs": Rule(),
    "dpo_mix_prefs": Rule(),
    "saa": Rule(),
    "sycophancy_data": Rule(reads=Reads("sycophancy", include=("answer_templates",))),
    # synthetic styles (synthetic.smk)
    "style_shard": Rule(
        reads=Reads("styles", exclude=("names", "shards", "rewriter", "source_prefset",
                                       "drop_flagged", "filter_tone_agnostic", "descriptions"),
                    select=_style_description),
        backend="styles", gpu=True, apis=(Api(("styles.openai.api_key_env",)),)),
    "style_gather": Rule(reads=Reads("styles", include=("drop_flagged", "filter_tone_agnostic"))),
    # training (train.smk)
    "train_sft": Rule(reads=Reads("sft"), gpu=True),
    "ref_logps": Rule(reads=Reads("dpo", include=("max_length", "batch_size", "long_prompts")),
                      gpu=True),
    "train_dpo": Rule(reads=_dpo_group, gpu=True),
    # which models and mixes exist is structure (inputs), not recipe
    "train_orpo": Rule(reads=Reads("orpo", exclude=("instruct_models", "mixes")), gpu=True),
    # generation (generate.smk)
    "eval_prompts": Rule(reads=Reads("generation", include=("prompt_seed", "prompt_source"),
                                     select=_prompt_set)),
    "generate": Rule(reads=Reads("generation",
                                 exclude=("prompt_sets", "prompt_seed", "prompt_source")),
                     backend="generation", gpu=True,
                     apis=(Api(("generation.openai.api_key_env",)),)),
    # evaluations (evaluate.smk): one judge rule for the first and the second judge ({judge})
    "judge": Rule(reads=_judge, backend="judge", gpu=True,
                  apis=(_OPENAI, Api(("judge.second_judge.api_key_env", "judge.api_key_env"),
                                     when="judge.second_judge.backend"))),
    "judge_check": Rule(reads=_judge, backend="judge", resources="judge", apis=(_OPENAI,)),
    "judge_agreement": Rule(reads=_judge_agreement),
    "reward_winrate": _REWARD,
    "reward_winrate_pair": _REWARD,  # a pair whose baseline is not Table 3's ({baseline})
    # sycophancy: dialogues (model side, GPU) and grading (the llm grader: an API) are separate
    "sycophancy_answer": Rule(reads=Reads("sycophancy", exclude=(*_SYC_NOT_READ, *_AYS),
                                          select=_sycophancy_backend),
                              backend="sycophancy", gpu=True,
                              apis=(Api(("sycophancy.api_key_env",)),)),
    "sycophancy_ays": Rule(reads=Reads("sycophancy", exclude=(*_SYC_NOT_READ, "answer_templates"),
                                       select=_sycophancy_backend),
                           backend="sycophancy", gpu=True,
                           apis=(Api(("sycophancy.api_key_env",)),)),
    # max_questions: the same rows as the dialogues
    "sycophancy_grade": Rule(
        reads=Reads("sycophancy", include=("grader", "bootstrap", "max_questions")),
        apis=(Api(("sycophancy.grader.api_key_env",), when="sycophancy.grader.kind",
                  value="llm"),)),
    # HELM (helm.smk): HELM's own downloaders on the login node, then one job per model/scenario
    # staging reads only these keys: other helm keys never re-stage
    "helm_stage": Rule(reads=Reads("helm", include=("scenarios", "mmlu_subjects",
                                                    "natural_qa_mode", "fixtures", "python")),
                       image="helm", packages=("crfm-helm",), download=True, local=True),
    "helm_run": Rule(reads=_helm, image="helm", packages=("crfm-helm", "torch"), gpu=True),
    "helm_summarize": Rule(
        reads=Reads(sections=("seeds", "sft", "dpo", "styles", "orpo", "report.bootstrap")),
        image="helm", packages=("crfm-helm",)),
    # report (report.smk, pages.smk)
    "table": Rule(),
    "figure": Rule(),
    "report_pages": Rule(),
    "resolved_config": Rule(container=False, local=True),  # writes the config: no command
    "snakemake_report": Rule(local=True),
    "freeze": Rule(),
}


def entry(rule: str) -> Rule:
    """The rule's entry; a name without one (a ``resources:`` key such as ``default``, a target
    rule) needs nothing: no backend, no GPU, no internet (every rule that runs something has an
    entry: tests/test_rule_table.py)."""
    return RULES.get(rule) or Rule()


def dotted(config: dict[str, Any], key: str) -> Any:
    """The value of a dotted config key (``judge.second_judge.backend``), None when absent."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


#: rules that may call an HTTP API (whether they do depends on the config)
API_RULES = tuple(r for r, e in RULES.items() if e.apis)
#: rules that download from the internet
DOWNLOAD_RULES = tuple(r for r, e in RULES.items() if e.download)
#: rules that always run on the login node (API rules may join them: prefbias.hpc.resources)
LOCAL_RULES = tuple(r for r, e in RULES.items() if e.local)
#: rules that use a GPU in the paper configuration
GPU_RULES = tuple(r for r, e in RULES.items() if e.gpu)
#: rule -> config section whose ``backend`` picks its image
BACKEND_SECTION = {r: e.backend for r, e in RULES.items() if e.backend}
