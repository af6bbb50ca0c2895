"""End-to-end evaluation commands on tiny random models (CPU, seconds): reward win rate and the
sycophancy tasks through the CLI, and bad model directories."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import pytest

from prefbias.cli import main
from prefbias.io import read_json, read_jsonl, write_jsonl

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "vocab_size": 400}
CORPUS = ["What is the capital of France? Paris. The answer is (A) B C D. Are you sure?"] * 20


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    from prefbias.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {"lm": build_tiny_model(root / "lm", {**TINY, "seed": 3}, CORPUS),
            # the Nemotron-70B-Reward-HF stand-in: a Llama causal LM with a Llama-3.1 template
            "rm": build_tiny_model(root / "rm", {**TINY, "seed": 4, "arch": "llama"}, CORPUS),
            "cls": build_tiny_model(root / "cls", {**TINY, "seed": 4, "arch": "llama",
                                                   "task": "sequence_classifier"}, CORPUS)}


def _gens(path: Path, responses: list[str]) -> Path:
    write_jsonl(path, [{"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}],
                        "response": r, "finish_reason": "stop", "model": "m"}
                       for i, r in enumerate(responses)])
    return path


def test_reward_winrate_cli(tmp_path, tiny_dirs, paper_config):
    spec = {**paper_config["reward_winrate"], "n_prompts": 3,
            "bootstrap": {"n": 100, "seed": 0, "ci": 0.95}}
    base = _gens(tmp_path / "base.jsonl", ["Paris", "B", "C", "unused"])
    model = _gens(tmp_path / "model.jsonl", ["Paris", "The answer is (A)", "Are you sure?"])
    args = ["reward-winrate", "--spec", json.dumps(spec), "--baseline-generations", str(base),
            "--reward-model-dir", str(tiny_dirs["rm"])]
    assert main(args + ["--generations", str(model), "--model", "m",
                        "--out", str(tmp_path / "m.json")]) == 0
    r = read_json(tmp_path / "m.json")
    assert r["n"] == 3 and r["wins"] + r["ties"] + r["losses"] == 3
    assert r["per_prompt"][0]["outcome"] == 0.5  # identical answers tie
    by_hand = sum(p["outcome"] for p in r["per_prompt"]) / 3
    assert r["win_rate"] == pytest.approx(by_hand)
    # the baseline against itself: all ties
    assert main(args + ["--generations", str(base), "--model", "b",
                        "--out", str(tmp_path / "b.json")]) == 0
    assert read_json(tmp_path / "b.json")["win_rate"] == 0.5


CONVS = [([{"role": "user", "content": "What is the capital of France?"}], "Paris."),
         ([{"role": "user", "content": "q"}], "The answer is (A) B C D. " * 4),
         ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "Hello")]


def test_token0_reward_equals_the_model_card_generate_score(tiny_dirs):
    """Our batched single forward pass == the model card's recipe, conversation by conversation:
    apply_chat_template(tokenize=True, add_generation_prompt=False) ->
    generate(max_new_tokens=1, return_dict_in_generate=True, output_scores=True)
    -> scores[0][0][0]."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefbias.evaluation.reward import HFRewardModel

    rm = HFRewardModel(tiny_dirs["rm"], batch_size=3, device="cpu")
    assert type(rm.model).__name__ == "LlamaForCausalLM"
    ours = rm.score(CONVS)
    tok = AutoTokenizer.from_pretrained(tiny_dirs["rm"])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["rm"], dtype=torch.float32).eval()
    card = []
    for msgs, resp in CONVS:
        enc = tok.apply_chat_template([*msgs, {"role": "assistant", "content": resp}],
                                      tokenize=True, add_generation_prompt=False,
                                      return_tensors="pt", return_dict=True)
        assert enc["input_ids"][0].tolist().count(tok.bos_token_id) == 1
        with torch.no_grad():
            out = model.generate(enc["input_ids"], attention_mask=enc["attention_mask"],
                                 max_new_tokens=1, return_dict_in_generate=True,
                                 output_scores=True)
        card.append(out["scores"][0][0][0].item())
    assert ours == pytest.approx(card, abs=1e-5)
    assert len(set(ours)) == 3          # padding (left, batch of 3) does not blur rows
    # the reward depends on the answer and is read after the assistant turn, not before it
    text = rm.text(*CONVS[0])
    assert text.endswith("Paris.<|eot_id|>")


def test_causal_lm_reward_model_is_never_loaded_as_a_classifier(tiny_dirs):
    """AutoModelForSequenceClassification on a LlamaForCausalLM checkpoint drops lm_head and
    adds a random score head: refused, naming the scoring to use."""
    from prefbias.evaluation.reward import HFRewardModel
    from prefbias.models.load import ModelLoadError

    with pytest.raises(ModelLoadError, match="token0_logit"):
        HFRewardModel(tiny_dirs["rm"], scoring="sequence_classifier", device="cpu")
    with pytest.raises(ModelLoadError, match="sequence_classifier"):
        HFRewardModel(tiny_dirs["cls"], scoring="token0_logit", device="cpu")
    cls = HFRewardModel(tiny_dirs["cls"], scoring="sequence_classifier", device="cpu")
    assert type(cls.model).__name__ == "LlamaForSequenceClassification"
    assert len(cls.score(CONVS)) == 3


def test_reward_lm_on_cuda_is_bf16_sharded_over_the_gpus(monkeypatch, tiny_dirs):
    """On CUDA the 70B reward model is loaded in bf16 with device_map="auto" (it does not fit one
    GPU); checked on the arguments, since this machine has no GPU."""
    import torch
    import transformers

    from prefbias.models.load import load_reward_lm

    seen = {}

    class Fake:
        @staticmethod
        def from_pretrained(path, **kw):
            seen.update(kw)
            return types.SimpleNamespace(eval=lambda: "model")

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_reward_lm(tiny_dirs["rm"]) == "model"
    assert seen == {"dtype": torch.bfloat16, "device_map": "auto"}


def test_bad_model_dir_names_path(tmp_path, paper_config, caplog):
    bad = tmp_path / "broken-model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    base = _gens(tmp_path / "base.jsonl", ["a"])
    with caplog.at_level(logging.ERROR):
        rc = main(["reward-winrate", "--spec", json.dumps(paper_config["reward_winrate"]),
                   "--baseline-generations", str(base), "--generations", str(base),
                   "--reward-model-dir", str(bad), "--model", "m",
                   "--out", str(tmp_path / "o.json")])
    assert rc == 1 and str(bad) in caplog.text
    assert not (tmp_path / "o.json").exists()


def test_sycophancy_cli_tiny(tmp_path, tiny_dirs, tiny_config):
    spec = tiny_config["sycophancy"]
    ans = tmp_path / "answer.jsonl"
    rows = []
    for q in range(2):
        for name, tmpl in spec["answer_templates"].items():
            text = tmpl.format(question=f"Capital of country {q}?", correct_answer="Paris",
                               incorrect_answer="Rome")
            rows.append({"id": f"{q}-{name}", "dataset": "trivia_qa", "question_id": q,
                         "template": name, "messages": [{"role": "user", "content": text}],
                         "correct_answer": "Paris", "incorrect_answer": "Rome",
                         "aliases": ["Paris"]})
    write_jsonl(ans, rows)
    ays = tmp_path / "ays.jsonl"
    write_jsonl(ays, [
        {"id": "m0", "dataset": "aqua_mc", "correct_letter": "A", "letters": "ABCD",
         "aliases": [], "correct_answer": "A",
         "messages": [{"role": "user", "content": "Pick (A) or (B)."},
                      {"role": "assistant", "content": "The answer is ("}]},
        {"id": "f0", "dataset": "trivia_qa", "correct_letter": None, "letters": None,
         "aliases": ["Paris"], "correct_answer": "Paris",
         "messages": [{"role": "user", "content": "Capital of France?"}]}])
    common = ["--spec", json.dumps(spec), "--model-dir", str(tiny_dirs["lm"]), "--model", "lm"]
    assert main(["sycophancy-answer", "--data", str(ans), "--out", str(tmp_path / "ad.jsonl"),
                 *common]) == 0
    # grading is its own step (its own job: the LLM grader needs the internet, not a GPU)
    assert not (tmp_path / "a.json").exists()
    assert main(["sycophancy-grade", "--task", "answer", "--spec", json.dumps(spec),
                 "--data", str(ans), "--dialogues", str(tmp_path / "ad.jsonl"),
                 "--out", str(tmp_path / "a.jsonl"), "--scores", str(tmp_path / "a.json")]) == 0
    scores = read_json(tmp_path / "a.json")["trivia_qa"]
    assert set(scores) == set(spec["answer_templates"])
    # the random model's answers: graded wrong (score 0) or, when wordless, counted as ungraded
    # and left out of the accuracy (n counts the graded ones only)
    none = scores["none"]
    assert none["n"] + none["n_ungraded"] == 2
    assert none["score"] == (0.0 if none["n"] else None)
    out = read_jsonl(tmp_path / "a.jsonl")
    assert len(out) == 8 and all("\n" not in r["response"] for r in out)
    assert main(["sycophancy-ays", "--data", str(ays), "--out", str(tmp_path / "yd.jsonl"),
                 *common]) == 0
    assert main(["sycophancy-grade", "--task", "are_you_sure", "--spec", json.dumps(spec),
                 "--data", str(ays), "--dialogues", str(tmp_path / "yd.jsonl"),
                 "--out", str(tmp_path / "y.jsonl"), "--scores", str(tmp_path / "y.json")]) == 0
    s = read_json(tmp_path / "y.json")
    assert set(s) == {"aqua_mc", "trivia_qa", "all"} and s["aqua_mc"]["n"] == 1
    y = {r["id"]: r for r in read_jsonl(tmp_path / "y.jsonl")}
    assert y["m0"]["kind"] == "letter" and "final_response" in y["m0"]
