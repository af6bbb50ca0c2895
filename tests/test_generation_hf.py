"""Contract tests of the ``hf`` generation backend on a tiny random Qwen2 (CPU)."""

from __future__ import annotations

import pytest

from prefbias.generation.base import (
    ContextOverflowError,
    GenerationError,
    GenRequest,
    Sampling,
)
from prefbias.generation.factory import make_backend

CORPUS = ["hello world how are you today", "the quick brown fox jumps over the lazy dog",
          "what is the capital of France? Paris is the capital.", "def f(x): return {x: 1}"] * 20


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from prefbias.models.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("gen") / "tiny"
    build_tiny_model(out, {"seed": 3, "max_position_embeddings": 256}, CORPUS)
    return out


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return make_backend("hf", str(tiny_dir), model_name="tiny-test", batch_size=4)


def _requests():
    reqs = [GenRequest(f"r{i}", [{"role": "user", "content": "hello world " * (1 + 3 * i)}])
            for i in range(5)]
    reqs.append(GenRequest("sys", [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "the quick brown fox"}]))
    return reqs


def test_batched_equals_sequential_under_greedy(backend):
    s = Sampling(temperature=0, max_new_tokens=8)
    backend.batch_size = 4
    batched = backend.generate(_requests(), s)
    backend.batch_size = 1
    sequential = backend.generate(_requests(), s)
    backend.batch_size = 4
    assert [r.id for r in batched] == [r.id for r in _requests()]  # request order kept
    for a, b in zip(batched, sequential, strict=True):
        assert (a.text, a.finish_reason, a.completion_tokens) == \
            (b.text, b.finish_reason, b.completion_tokens), a.id
        assert a.prompt_tokens == b.prompt_tokens > 0


def test_prefill_is_continued(backend):
    import torch

    msgs = [{"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "the quick"}]
    ids = backend.encode(GenRequest("p", msgs))
    text = backend.tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\nthe quick")  # no end-of-turn, no new turn
    [res] = backend.generate([GenRequest("p", msgs)], Sampling(temperature=0, max_new_tokens=6))
    # the returned text is the continuation the model produces from that exact prefix
    with torch.inference_mode():
        out = backend.lm.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                  dtype=torch.long), max_new_tokens=6, do_sample=False,
                                  eos_token_id=backend.eos_ids,
                                  pad_token_id=backend.tokenizer.pad_token_id)
    toks = out[0, len(ids):].tolist()
    toks = toks[:next((i for i, t in enumerate(toks) if t in backend.eos_ids), len(toks))]
    assert res.text == backend.tokenizer.decode(toks, skip_special_tokens=True)
    assert not res.text.startswith("the quick")


def test_length_finish_reason_and_row_provenance(backend, tmp_path):
    from prefbias.generation.base import run_resumable
    from prefbias.io import read_jsonl

    s = Sampling(temperature=0.7, top_p=0.9, top_k=5, max_new_tokens=3, seed=7)
    out = tmp_path / "g.jsonl"
    stats = run_resumable(backend, _requests()[:3], s, out)
    rows = read_jsonl(out)
    assert stats["n"] == 3 and len(rows) == 3
    for row in rows:
        assert row["completion_tokens"] <= 3
        if row["finish_reason"] == "length":
            assert row["completion_tokens"] == 3
        assert row["model"] == "tiny-test" and row["backend"] == "hf" and row["revision"]
        assert row["sampling"] == {"temperature": 0.7, "top_p": 0.9, "top_k": 5,
                                   "max_new_tokens": 3, "seed": 7, "stop": []}
    assert any(r["finish_reason"] == "length" for r in rows)
    # sampling is reproducible from the seed
    again = backend.generate(_requests()[:3], s)
    assert [r.text for r in again] == [r["response"] for r in rows]


def test_context_overflow_is_a_clear_error(backend):
    long = GenRequest("long", [{"role": "user", "content": "hello world " * 400}])
    with pytest.raises(ContextOverflowError, match="'long'.*context window of 256"):
        backend.generate([long], Sampling(temperature=0, max_new_tokens=4))
    short = GenRequest("short", [{"role": "user", "content": "hi"}])
    with pytest.raises(ContextOverflowError, match="max_new_tokens 300"):
        backend.generate([short], Sampling(temperature=0, max_new_tokens=300))


def test_unknown_backend_and_unloadable_model(tmp_path):
    with pytest.raises(GenerationError, match="unknown generation backend 'tgi'"):
        make_backend("tgi", "x")
    with pytest.raises(GenerationError, match="does not load.*does not exist"):
        make_backend("hf", str(tmp_path / "nope"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(GenerationError, match=f"'bad' does not load.*{bad}"):
        make_backend("hf", str(bad))


def test_stop_strings_cut_the_text(backend):
    s = Sampling(temperature=0, max_new_tokens=8)
    [free] = backend.generate(_requests()[:1], s)
    words = [w for w in free.text.split() if len(w) >= 2]
    if not words:
        pytest.skip("the random model produced no word to pick a stop string from")
    stop = words[0][:2]
    [cut] = backend.generate(_requests()[:1], Sampling(temperature=0, max_new_tokens=8,
                                                       stop=(stop,)))
    assert stop not in cut.text and cut.finish_reason == "stop"
    assert cut.text == free.text[:free.text.index(stop)]


def test_stop_criterion_is_built_once_per_stop_set(tiny_dir, monkeypatch):
    """Building a stop-string criterion reads the whole vocabulary (0.2 s for a real one): the
    backend builds it once per set of stop strings, not once per batch."""
    import transformers

    built = []
    real = transformers.StopStringCriteria.__init__
    monkeypatch.setattr(transformers.StopStringCriteria, "__init__",
                        lambda self, tok, stops: built.append(tuple(stops)) or
                        real(self, tok, stops))
    backend = make_backend("hf", str(tiny_dir), batch_size=2)
    for _ in range(2):  # three batches a call
        backend.generate(_requests(), Sampling(temperature=0, max_new_tokens=3, stop=("\n",)))
    backend.generate(_requests()[:2], Sampling(temperature=0, max_new_tokens=3,
                                               stop=("\n", "lazy")))
    assert built == [("\n",), ("\n", "lazy")]


@pytest.mark.parametrize("arch", ["qwen2", "gemma", "gemma3", "mistral", "falcon", "llama"])
def test_shared_prefix_batches_equal_one_prompt_at_a_time(arch, tmp_path, monkeypatch):
    """A batch whose prompts share a long prefix runs it once (its KV cache repeated, own tokens
    padded in the middle): greedy output equals one prompt at a time, on the real architecture
    class and chat template of every paper model's stand-in."""
    from prefbias.generation.hf_backend import HFBackend
    from prefbias.models.tiny import build_tiny_model

    build_tiny_model(tmp_path / arch, {"seed": 5, "arch": arch}, CORPUS)
    if arch == "falcon":  # like falcon-7b-instruct: no template of its own, the paper's at fetch
        from prefbias.models.templates import install_template

        install_template(tmp_path / arch, "lf2024_falcon")
    b = make_backend("hf", str(tmp_path / arch), batch_size=4)
    shared = "the quick brown fox jumps over the lazy dog. " * 2
    reqs = [GenRequest(f"r{i}", [{"role": "user", "content": shared + tail}])
            for i, tail in enumerate(["hello", "what is the capital of France?", "hi you",
                                      "how are you today world"])]
    calls = []
    real = HFBackend._prefix_cache
    monkeypatch.setattr(HFBackend, "_prefix_cache",
                        lambda self, prefix, n: calls.append(prefix.shape[1]) or
                        real(self, prefix, n))
    s = Sampling(temperature=0, max_new_tokens=6)
    batched = b.generate(reqs, s)
    assert calls and calls[0] >= b.min_shared_prefix  # the shared path ran
    b.batch_size = 1
    sequential = b.generate(reqs, s)
    assert len(calls) == 1  # one prompt at a time never shares
    assert sum(x.completion_tokens for x in batched) > len(batched)  # more than EOS at once
    for x, y in zip(batched, sequential, strict=True):
        assert (x.text, x.finish_reason, x.completion_tokens, x.prompt_tokens) == \
            (y.text, y.finish_reason, y.completion_tokens, y.prompt_tokens), (arch, x.id)


def test_shared_prefix_length():
    b = HFBackendStub()
    assert b.shared_prefix([[1] * 20]) == 0                       # one row: nothing to share
    assert b.shared_prefix([[1] * 9 + [2], [1] * 9 + [3]]) == 9
    assert b.shared_prefix([[1] * 9 + [2], [1] * 9]) == 8          # each row keeps a token
    assert b.shared_prefix([[1] * 7 + [2], [1] * 7 + [3]]) == 0    # below min_shared_prefix


class HFBackendStub:
    from prefbias.generation.hf_backend import HFBackend

    min_shared_prefix = HFBackend.min_shared_prefix
    shared_prefix = HFBackend.shared_prefix
