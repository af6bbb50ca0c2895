"""Tiny model builder and model loading."""

from __future__ import annotations

import json

import pytest

from prefbias.models.load import ModelLoadError, fetch_model, load_causal_lm, load_tokenizer
from prefbias.models.tiny import build_tiny_model, corpus_from_files

TEXTS = ["What is the capital of France? The answer is (B) Paris.",
         "I think the answer is 42 but I'm really not sure."] * 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "tiny"
    build_tiny_model(out, {"seed": 3, "vocab_size": 400}, TEXTS)
    return out


def test_tokenizer_round_trips_and_both_load_paths_agree(tiny_dir):
    from transformers import PreTrainedTokenizerFast

    auto = load_tokenizer(tiny_dir)
    fast = PreTrainedTokenizerFast.from_pretrained(tiny_dir)
    text = "Hello  world!\n\nThe answer is (C) 1234 café"
    assert auto(text).input_ids == fast(text).input_ids
    assert auto.decode(auto(text).input_ids) == text
    rendered = auto.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    for digit in "12345":
        assert len(auto.encode(digit)) == 1


def test_tiny_model_is_deterministic_and_generates(tmp_path, tiny_dir):
    import torch

    again = tmp_path / "again"
    build_tiny_model(again, {"seed": 3, "vocab_size": 400}, TEXTS)
    a = load_causal_lm(tiny_dir, device="cpu")
    b = load_causal_lm(again, device="cpu")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    tok = load_tokenizer(tiny_dir)
    ids = tok("hello", return_tensors="pt")
    out = a.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.input_ids.shape[1] + 4 or tok.eos_token_id in out[0].tolist()
    meta = json.loads((tiny_dir / "prefbias_model.json").read_text())
    assert meta["source"] == "tiny" and meta["parameters"] > 0


def test_sequence_classifier_reward_model_builds(tmp_path):
    from prefbias.models.load import load_reward_model

    out = tmp_path / "rm"
    build_tiny_model(out, {"seed": 1, "vocab_size": 400, "task": "sequence_classifier"}, TEXTS)
    rm = load_reward_model(out, device="cpu")
    tok = load_tokenizer(out)
    assert type(rm).__name__ == "Qwen2ForSequenceClassification"
    assert rm(**tok("hello", return_tensors="pt")).logits.shape == (1, 1)


def test_missing_model_dir_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nope")):
        load_causal_lm(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_tokenizer(tmp_path / "empty")


def test_fetch_model_from_local_snapshot(tmp_path, tiny_dir):
    out = tmp_path / "fetched"
    fetch_model({"repo": str(tiny_dir), "revision": "local"}, out)
    assert (out / "config.json").exists()
    assert json.loads((out / "prefbias_model.json").read_text())["repo"] == str(tiny_dir)
    load_tokenizer(out)


def test_fetch_failure_leaves_nothing(tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    out = tmp_path / "out"
    with pytest.raises(ModelLoadError):
        fetch_model({"repo": str(bad), "revision": "x"}, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_corpus_from_files(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "hi there"}]}\n')
    assert list(corpus_from_files([f])) == ["user", "hi there"]


# -- faithful stand-ins (issue 15.4) and the paper's templates (issue 13.6) -------------------
SMALL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
         "intermediate_size": 64, "vocab_size": 400}
REAL_CLASS = {"qwen2": "Qwen2ForCausalLM", "gemma3": "Gemma3ForCausalLM",
              "gemma": "GemmaForCausalLM", "mistral": "MistralForCausalLM",
              "falcon": "FalconForCausalLM", "llama": "LlamaForCausalLM"}
USER = [{"role": "user", "content": "What is 2+2?"}]
SYSTEM = [{"role": "system", "content": "Answer briefly."}, *USER]
MULTI = [*SYSTEM, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    return {arch: build_tiny_model(root / arch, {**SMALL, "arch": arch, "seed": 2}, TEXTS)
            for arch in REAL_CLASS}


def _render(tok, msgs, **kw):
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kw)


@pytest.mark.parametrize("arch", list(REAL_CLASS))
def test_standin_uses_the_real_architecture_class(arch, standins):
    from transformers import AutoConfig, PreTrainedTokenizerFast

    d = standins[arch]
    model = load_causal_lm(d, device="cpu")
    assert type(model).__name__ == REAL_CLASS[arch]
    assert AutoConfig.from_pretrained(d).model_type == {"gemma3": "gemma3_text"}.get(arch, arch)
    auto, fast = load_tokenizer(d), PreTrainedTokenizerFast.from_pretrained(d)
    text = "Hello  world!\n\nThe answer is (C) 1234 café"
    assert auto(text, add_special_tokens=False).input_ids == \
        fast(text, add_special_tokens=False).input_ids
    assert auto.decode(auto(text, add_special_tokens=False).input_ids) == text
    # the real tokenizers of Gemma, Mistral and Llama prepend BOS; Qwen2 and Falcon do not
    ids = auto("hi").input_ids
    assert (ids[0] == auto.bos_token_id) == (arch in ("gemma", "gemma3", "mistral", "llama"))


def test_standin_templates_behave_like_the_real_ones(standins):
    tok = {a: load_tokenizer(d) for a, d in standins.items()}
    assert _render(tok["qwen2"], USER) == \
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert _render(tok["gemma"], USER) == \
        "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"
    with pytest.raises(Exception, match="System role not supported"):
        _render(tok["gemma"], SYSTEM)
    with pytest.raises(Exception, match="must alternate"):
        _render(tok["gemma"], [*USER, *USER])
    assert _render(tok["gemma3"], SYSTEM) == ("<bos><start_of_turn>user\nAnswer briefly.\n\n"
                                              "What is 2+2?<end_of_turn>\n<start_of_turn>model\n")
    assert _render(tok["mistral"], USER) == "<s>[INST] What is 2+2? [/INST]"
    with pytest.raises(Exception, match="must alternate"):
        _render(tok["mistral"], SYSTEM)
    assert _render(tok["llama"], USER) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant"
        "<|end_header_id|>\n\n")
    assert tok["falcon"].chat_template is None   # falcon-7b-instruct ships no chat template
    # special tokens are single tokens, as in the real vocabularies
    for arch, marker in [("gemma", "<start_of_turn>"), ("llama", "<|eot_id|>"),
                         ("qwen2", "<|im_start|>"), ("mistral", "[INST]")]:
        assert len(tok[arch].encode(marker, add_special_tokens=False)) == 1


def test_hf_backend_refuses_falcon_without_a_template(standins):
    from prefbias.generation.base import GenerationError
    from prefbias.generation.hf_backend import HFBackend

    with pytest.raises(GenerationError, match="no chat template"):
        HFBackend(str(standins["falcon"]), device="cpu")


@pytest.fixture(scope="module")
def paper_standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    spec = {"gemma": "lf2024_gemma", "falcon": "lf2024_falcon", "mistral": "lf2024_mistral"}
    return {arch: build_tiny_model(root / arch, {**SMALL, "arch": arch, "seed": 2,
                                                 "chat_template": t}, TEXTS)
            for arch, t in spec.items()}


def test_paper_templates_are_llama_factory_2024(paper_standins, standins):
    tok = {a: load_tokenizer(d) for a, d in paper_standins.items()}
    # Gemma: the system text goes raw before the first user turn (no system role to refuse)
    assert _render(tok["gemma"], SYSTEM) == ("<bos>Answer briefly.<start_of_turn>user\nWhat is "
                                             "2+2?<end_of_turn>\n<start_of_turn>model\n")
    assert _render(tok["gemma"], MULTI) == (
        "<bos>Answer briefly.<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>"
        "model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>"
        "model\n")
    # without a system turn it is exactly Google's format for a single turn
    assert _render(tok["gemma"], USER) == _render(load_tokenizer(standins["gemma"]), USER)
    assert _render(tok["falcon"], USER) == "User: What is 2+2?\nFalcon:"
    assert _render(tok["falcon"], MULTI) == \
        "Answer briefly.User: What is 2+2?\nFalcon:4\nUser: And 3+3?\nFalcon:"
    assert _render(tok["mistral"], MULTI) == \
        "<s>Answer briefly.[INST] What is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]"
    assert _render(tok["mistral"], USER) == _render(load_tokenizer(standins["mistral"]), USER)
    # a prefilled assistant turn (Are You Sure's "The answer is (") continues in place
    pre = [*USER, {"role": "assistant", "content": "The answer is ("}]
    for t in tok.values():
        text = t.apply_chat_template(pre, tokenize=False, continue_final_message=True)
        assert text.endswith("The answer is (")


def test_training_and_generation_render_the_same_prompt(paper_standins):
    """One template in the model directory: the ORPO/SFT batcher and the hf backend encode a
    system + user prompt to the same ids (and a trained model saves that tokenizer)."""
    from prefbias.generation.base import GenRequest
    from prefbias.generation.hf_backend import HFBackend
    from prefbias.train.batching import render_prompt

    d = paper_standins["gemma"]
    tok = load_tokenizer(d)
    train_ids = tok(render_prompt(tok, SYSTEM), add_special_tokens=False)["input_ids"]
    backend = HFBackend(str(d), device="cpu")
    assert backend.encode(GenRequest("r", SYSTEM)) == train_ids
    assert train_ids.count(tok.bos_token_id) == 1


def test_unknown_template_and_arch_are_clear_errors(tmp_path):
    from prefbias.models.templates import get_template

    with pytest.raises(KeyError, match="unknown chat template 'chatml2'"):
        get_template("chatml2")
    with pytest.raises(ValueError, match="unknown tiny arch 'gpt9'"):
        build_tiny_model(tmp_path / "x", {**SMALL, "arch": "gpt9"}, TEXTS)


# -- fetch-model downloads only what the loaders read (issue 13.8) ----------------------------
MISTRAL_V03_FILES = [".gitattributes", "README.md", "config.json", "consolidated.safetensors",
                     "generation_config.json", "model-00001-of-00003.safetensors",
                     "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
                     "model.safetensors.index.json", "params.json", "special_tokens_map.json",
                     "tokenizer.json", "tokenizer.model", "tokenizer.model.v3",
                     "tokenizer_config.json"]
LLAMA31_FILES = ["config.json", "generation_config.json", "model-00001-of-00030.safetensors",
                 "model.safetensors.index.json", "original/consolidated.00.pth",
                 "original/params.json", "original/tokenizer.model", "special_tokens_map.json",
                 "tokenizer.json", "tokenizer_config.json"]
GEMMA_FILES = ["config.json", "gemma-7b-it.gguf", "generation_config.json",
               "model-00001-of-00004.safetensors", "model.safetensors.index.json",
               "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
               "tokenizer_config.json"]
FALCON_FILES = ["config.json", "configuration_falcon.py", "coreml/text-generation/x.mlpackage",
                "generation_config.json", "handler.py", "modeling_falcon.py",
                "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                "pytorch_model.bin.index.json", "special_tokens_map.json", "tokenizer.json",
                "tokenizer_config.json"]


def test_select_model_files_skips_duplicates_and_native_formats():
    from prefbias.models.load import select_model_files

    assert select_model_files(MISTRAL_V03_FILES) == [
        "config.json", "generation_config.json", "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
        "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
        "tokenizer.model", "tokenizer_config.json"]
    assert not any(f.startswith("original/") for f in select_model_files(LLAMA31_FILES))
    assert "gemma-7b-it.gguf" not in select_model_files(GEMMA_FILES)
    falcon = select_model_files(FALCON_FILES)   # no safetensors at that revision: the .bin shards
    assert "pytorch_model-00001-of-00002.bin" in falcon and "pytorch_model.bin.index.json" in falcon
    assert not any(f.endswith(".py") or f.startswith("coreml/") for f in falcon)
    with pytest.raises(ModelLoadError, match="no safetensors or pytorch_model"):
        select_model_files(["config.json", "model.gguf"])


def test_fetch_model_from_the_hub_passes_allow_patterns(monkeypatch, tmp_path, standins):
    import shutil

    import huggingface_hub

    calls = {}

    class Api:
        def list_repo_files(self, repo, revision):
            calls["list"] = (repo, revision)
            return MISTRAL_V03_FILES

    def snapshot_download(repo_id, revision, local_dir, allow_patterns):
        calls["download"] = (repo_id, revision, sorted(allow_patterns))
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(standins["mistral"] / f, local_dir)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    out = fetch_model({"repo": "mistralai/Mistral-7B-Instruct-v0.3", "revision": "c170c70",
                       "chat_template": "lf2024_mistral"}, tmp_path / "m")
    repo, rev, allow = calls["download"]
    assert (repo, rev) == ("mistralai/Mistral-7B-Instruct-v0.3", "c170c70")
    assert "consolidated.safetensors" not in allow and "tokenizer.model.v3" not in allow
    assert "params.json" not in allow and "model-00001-of-00003.safetensors" in allow
    meta = json.loads((out / "prefbias_model.json").read_text())
    assert meta["chat_template"] == "lf2024_mistral" and meta["files"] == allow
    tok = load_tokenizer(out)
    assert tok.apply_chat_template(SYSTEM, tokenize=False, add_generation_prompt=True) == \
        "<s>Answer briefly.[INST] What is 2+2? [/INST]"


def test_fetch_model_local_copies_only_loader_files(tmp_path, standins):
    src = tmp_path / "staged"
    import shutil

    shutil.copytree(standins["gemma"], src)
    (src / "gemma-7b-it.gguf").write_bytes(b"gguf")
    (src / "original").mkdir()
    (src / "original" / "params.json").write_text("{}")
    out = fetch_model({"repo": str(src), "revision": "local", "chat_template": "lf2024_gemma"},
                      tmp_path / "fetched")
    assert not (out / "gemma-7b-it.gguf").exists() and not (out / "original").exists()
    assert _render(load_tokenizer(out), SYSTEM).startswith("<bos>Answer briefly.<start_of_turn>")
    load_causal_lm(out, device="cpu")


# -- config wiring: pins, paper templates, stand-ins of the right family -----------------------
FAMILY = {"Qwen/Qwen2.5-0.5B": "qwen2", "google/gemma-3-12b-it": "gemma3",
          "mistralai/Mistral-7B-Instruct-v0.2": "mistral",
          "mistralai/Mistral-7B-Instruct-v0.3": "mistral", "google/gemma-7b-it": "gemma",
          "tiiuae/falcon-7b-instruct": "falcon", "nvidia/Llama-3.1-Nemotron-70B-Reward-HF": "llama"}


def test_paper_models_are_pinned_and_templated_and_stood_in_faithfully(paper_config,
                                                                       tiny_config):
    import re

    models = paper_config["models"]
    for name, spec in models.items():
        if spec["source"] == "hf":
            assert re.fullmatch(r"[0-9a-f]{40}", spec["revision"]), name  # a commit, not 'main'
        else:  # pypi_gguf: a pinned wheel and file, both by sha256
            assert spec["source"] == "pypi_gguf" and re.fullmatch(r"[0-9a-f]{64}",
                                                                  spec["file_sha256"]), name
    # the custom-code RefinedWebModel commit of falcon-7b-instruct is not used
    assert models["falcon-7b-it"]["revision"] != "9cbb1610be271fd06576e7e00f60e75612d53a4d"
    for name in paper_config["orpo"]["instruct_models"]:      # trained with LLaMA-Factory
        assert models[name]["chat_template"].startswith("lf2024_"), name
    assert paper_config["reward_winrate"]["scoring"] == "token0_logit"
    for name, spec in tiny_config["models"].items():
        if spec["source"] != "tiny":  # the real SmolLM2 (pypi_gguf) plays one role itself
            assert spec["source"] == "pypi_gguf" and spec["stands_in_for"] in models, name
            continue
        assert spec["arch"] == FAMILY[models[name]["repo"]], name
        assert spec.get("chat_template") == models[name].get("chat_template"), name
        assert spec.get("task", "causal_lm") == "causal_lm", name
