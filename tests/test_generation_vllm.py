"""``vllm`` backend without vLLM: a clear error, the mapping onto a fake module, and the worker
protocol (the engine in another interpreter) on a stand-in vllm package."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from prefbias.generation.base import (
    ContextOverflowError,
    GenerationError,
    GenRequest,
    Sampling,
)
from prefbias.generation.factory import make_backend


def test_missing_vllm_is_a_clear_error(monkeypatch, tmp_path):
    from prefbias.generation import vllm_backend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    monkeypatch.setattr(vllm_backend, "vllm_python", lambda: None)  # and no .venv-vllm
    with pytest.raises(GenerationError, match="needs the vllm package.*envs/vllm.yaml"):
        make_backend("vllm", str(tmp_path))


class _Tok:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt,
                            continue_final_message):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


def _fake_vllm(record):
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kw):
            record["params"] = kw

    class LLM:
        def __init__(self, **kw):
            record["llm"] = kw
            self.llm_engine = types.SimpleNamespace(
                model_config=types.SimpleNamespace(max_model_len=64))

        def get_tokenizer(self):
            return _Tok()

        def generate(self, prompts, params, use_tqdm=False):
            record.setdefault("prompts", []).extend(prompts)
            outs = []
            for i, p in enumerate(prompts):
                c = types.SimpleNamespace(text=f"out{len(p['prompt_token_ids'])}",
                                          token_ids=[1, 2, 3],
                                          finish_reason="length" if i % 2 else "stop")
                outs.append(types.SimpleNamespace(outputs=[c]))
            return outs

    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    return mod


@pytest.fixture
def fake(monkeypatch, tmp_path):
    record: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(record))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 14,
                                                      "num_key_value_heads": 2}))
    return record, tmp_path


def test_sampling_params_and_llm_mapping(fake):
    record, model = fake
    b = make_backend("vllm", str(model), model_name="m1", chunk_size=2)
    assert record["llm"]["model"] == str(model)
    assert record["llm"]["tensor_parallel_size"] == 2  # 3 GPUs visible, 14 heads / 2 kv heads
    reqs = [GenRequest(f"r{i}", [{"role": "user", "content": "x" * i}]) for i in range(3)]
    res = b.generate(reqs, Sampling(temperature=0.6, top_p=0.95, top_k=0, max_new_tokens=8,
                                    seed=5, stop=("###",)))
    assert record["params"] == {"temperature": 0.6, "top_p": 0.95, "top_k": -1, "max_tokens": 8,
                                "seed": 5, "stop": ["###"]}
    assert [r.id for r in res] == ["r0", "r1", "r2"]
    assert [r.finish_reason for r in res] == ["stop", "length", "stop"]
    assert res[0].completion_tokens == 3 and res[0].prompt_tokens == len("<user><assistant>")
    assert b.name == "vllm" and b.model == "m1"


def test_prefill_and_context_overflow(fake):
    from prefbias.generation.base import ContextOverflowError

    record, model = fake
    b = make_backend("vllm", str(model))
    pre = GenRequest("p", [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "ok"}])
    b.generate([pre], Sampling(max_new_tokens=4))
    assert record["prompts"][0]["prompt_token_ids"] == [ord(c) for c in "<user>hi<assistant>ok"]
    with pytest.raises(ContextOverflowError, match="context window of 64"):
        b.generate([GenRequest("big", [{"role": "user", "content": "y" * 60}])],
                   Sampling(max_new_tokens=4))


def test_block_size_is_vllms_own_on_gpus_unless_asked(fake):
    record, model = fake
    make_backend("vllm", str(model))
    assert "block_size" not in record["llm"]  # GPUs visible: vLLM's default
    make_backend("vllm", str(model), block_size=64)
    assert record["llm"]["block_size"] == 64


def test_mistral_model_loads_with_the_hf_tokenizer(fake):
    """A Mistral-7B-Instruct-v0.3 snapshot ships tokenizer.model.v3 beside the HF tokenizer: vLLM's
    tokenizer_mode 'auto' would pick mistral-common (no special-token parsing of our rendered
    prompt). The backend must ask for the HF tokenizer and HF config explicitly."""
    record, model = fake
    (model / "config.json").write_text(json.dumps({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "num_attention_heads": 32, "num_key_value_heads": 8}))
    for name in ("tokenizer.model.v3", "tokenizer.model", "tokenizer.json", "params.json"):
        (model / name).write_text("x")
    make_backend("vllm", str(model), model_name="mistral-7b-it-v0.3")
    assert record["llm"]["tokenizer_mode"] == "hf"
    assert record["llm"]["config_format"] == "hf"
    assert record["llm"]["tensor_parallel_size"] == 2   # 3 GPUs visible; 32 heads / 8 kv heads


# -- the engine in another interpreter (prefbias.generation.vllm_worker) ---------------------
FAKE_VLLM = Path(__file__).parent / "support" / "fake_vllm"


@pytest.fixture
def worker_env(monkeypatch, tmp_path):
    """No vllm here; PREFBIAS_VLLM_PYTHON = this python, which finds the stand-in package."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setenv("PREFBIAS_VLLM_PYTHON", sys.executable)
    src = Path(__file__).resolve().parents[1] / "src"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_VLLM), str(src)]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 4}))
    return tmp_path


def test_worker_runs_the_engine_and_streams_results(worker_env):
    from prefbias.generation.vllm_backend import (
        CPU_BLOCK_SIZE,
        CPU_KV_CACHE_BYTES,
        VLLMWorkerBackend,
    )

    with make_backend("vllm", str(worker_env), model_name="m1", chunk_size=2) as b:
        assert isinstance(b, VLLMWorkerBackend)
        assert (b.name, b.model, b.context) == ("vllm", "m1", 64)
        reqs = [GenRequest(f"r{i}", [{"role": "user", "content": "x" * i}]) for i in range(3)]
        res = b.generate(reqs, Sampling(temperature=0, max_new_tokens=8))
        assert [r.text for r in res] == ["out17:8", "out18:8", "out19:8"]
        assert [r.finish_reason for r in res] == ["stop", "length", "stop"]
        assert (res[0].prompt_tokens, res[0].completion_tokens) == (17, 3)
        # the CPU defaults reach the engine: float32, eager, a fixed KV cache in blocks short
        # enough for prefix caching to reuse the demo's shared prompt prefixes
        kw = json.loads(b.generate([GenRequest("k", [{"role": "user", "content": "kwargs"}])],
                                   Sampling(max_new_tokens=1))[0].text)
        assert kw["dtype"] == "float32" and kw["enforce_eager"] is True
        assert kw["block_size"] == CPU_BLOCK_SIZE == 32
        assert kw["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and kw["model"] == \
            str(worker_env)
        # a consumer that stops early does not desynchronise the next call
        it = b.generate_iter(reqs, Sampling(max_new_tokens=2))
        assert next(it).text == "out17:2"
        del it
        assert b.generate(reqs[:1], Sampling(max_new_tokens=5))[0].text == "out17:5"
        # the worker's errors are raised here with their class and message
        with pytest.raises(ContextOverflowError, match="context window of 64"):
            b.generate([GenRequest("big", [{"role": "user", "content": "y" * 60}])],
                       Sampling(max_new_tokens=4))
        assert b.generate(reqs[:1], Sampling(max_new_tokens=6))[0].text == "out17:6"
    assert b.proc.returncode == 0


def test_worker_load_failure_names_the_model(worker_env, tmp_path):
    (worker_env / "config.json").unlink()
    with pytest.raises(GenerationError, match="has no config.json"):
        make_backend("vllm", str(worker_env))


def test_no_vllm_anywhere_is_a_clear_error(monkeypatch, tmp_path):
    from prefbias.generation import vllm_backend

    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setenv("PREFBIAS_VLLM_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(GenerationError, match="PREFBIAS_VLLM_PYTHON=.*no such python"):
        make_backend("vllm", str(tmp_path))
    monkeypatch.delenv("PREFBIAS_VLLM_PYTHON")
    monkeypatch.setattr(vllm_backend, "vllm_python", lambda: None)
    with pytest.raises(GenerationError, match="needs the vllm package.*setup-vllm-env"):
        make_backend("vllm", str(tmp_path))


def test_worker_python_lookup(monkeypatch, tmp_path):
    from prefbias.generation.vllm_backend import vllm_python

    py = tmp_path / ".venv-vllm" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    monkeypatch.chdir(tmp_path / ".venv-vllm")
    assert vllm_python({}, repo=tmp_path) == py
    assert vllm_python({"PREFBIAS_VLLM_PYTHON": str(py.parent)}, repo=tmp_path / "x") == py
    # inside an Apptainer image the image's own vllm is the engine, never a bound .venv-vllm
    assert vllm_python({"APPTAINER_CONTAINER": "/x.sif"}, repo=tmp_path) is None
    assert vllm_python({}, repo=tmp_path / "elsewhere") is None


def test_agreement_counts_exact_matches_and_first_divergence():
    from prefbias.generation.compare import agreement, first_divergence

    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    enc = lambda s: [ord(c) for c in s]  # noqa: E731
    st = agreement(["abc", "abd", "x", "hello"], ["abc", "abc", "y", "help"], enc)
    assert (st["n"], st["exact"], st["exact_fraction"], st["diverged"]) == (4, 1, 0.25, 3)
    assert st["diverged_at"] == [0, 2, 3]
    assert st["first_divergence"] == {"min": 0, "median": 2, "mean": 1.67, "max": 3}
    assert agreement(["a"], ["a"], enc)["first_divergence"] is None
    with pytest.raises(ValueError):
        agreement(["a"], [], enc)
