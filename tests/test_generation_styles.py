"""Style rewrites (sharding, flags, filters, gather) and evaluation prompt sets."""

from __future__ import annotations

import json

import pytest

from prefbias.generation import styles
from prefbias.generation.base import BackendBase, GenerationError, GenResult, partial_path
from prefbias.io import read_json, read_jsonl, write_jsonl


class FakeBackend(BackendBase):
    """Returns scripted rewrites; records every request it gets."""

    name = "fake"
    model = "rewriter-x"
    revision = "rev1"

    def __init__(self, answer=None, fail_after=None):
        self.answer = answer or (lambda req: ("Rewritten!", "stop"))
        self.fail_after = fail_after
        self.seen: list[str] = []

    def generate_iter(self, requests, sampling):
        for r in requests:
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise RuntimeError("simulated crash")
            self.seen.append(r.id)
            text, fr = self.answer(r)
            yield GenResult(r.id, text, fr, 10, 5)


def _pairs(n, prefix):
    rows = []
    for i in range(n):
        q = "Translate to Spanish: 'good morning'" if i == 1 else f"{prefix} question {i} {{x}}"
        rows.append({"id": f"{prefix}{i}", "prompt": [{"role": "user", "content": q}],
                     "chosen": f"chosen {i} {{code}}", "rejected": f"rejected {i}",
                     "source": "ultrafeedback"})
    return rows


@pytest.fixture
def prefs(tmp_path):
    paths = {}
    for split, n in (("train", 7), ("test", 4)):
        paths[split] = tmp_path / f"{split}.jsonl"
        write_jsonl(paths[split], _pairs(n, split))
    return paths


@pytest.fixture
def spec(tiny_config):
    return tiny_config["styles"]


def test_template_fills_every_style_without_touching_braces(spec):
    pair = _pairs(1, "t")[0]
    for style in spec["names"]:
        req = styles.rewrite_request(pair, "id", style, spec)
        text = req.messages[0]["content"]
        assert spec["descriptions"][style].split()[2] in text
        assert "t question 0 {x}" in text and "chosen 0 {code}" in text
        assert "{prompt}" not in text and "{response}" not in text
    with pytest.raises(GenerationError, match="placeholder"):
        styles.fill_template("no fields", style_description="a", prompt="b", response="c")
    # inserted text is never re-expanded
    assert styles.fill_template("{prompt}|{response}|{style_description}", prompt="{response}",
                                response="R", style_description="S") == "{response}|R|S"


def test_flags_and_filters():
    assert styles.flag_rewrite("", "stop", "x") == ["empty"]
    assert styles.flag_rewrite("abc", "length", "x") == ["truncated"]
    assert styles.flag_rewrite("I'm sorry, but I can't help", "stop", "Paris.") == ["refusal"]
    assert styles.flag_rewrite("I cannot do that.", "stop", "I cannot assist with that.") == []
    assert styles.clean_rewrite("Here is the rewritten answer:\n\nBold text")[0] == "Bold text"
    assert styles.clean_rewrite("Sure! Here's a rewritten response in an authoritative tone:\n"
                                "X")[0] == "X"
    assert styles.clean_rewrite("Here is how it works: x") == ("Here is how it works: x", False)
    ta = styles.is_tone_agnostic
    assert ta([{"role": "user", "content": "Translate to Spanish: 'I love books.'"}])
    assert ta([{"role": "user", "content": "How do you say 'thank you' in Japanese?"}])
    assert not ta([{"role": "user", "content": "Write a poem about the sea."}])


def test_shards_partition_both_splits(prefs):
    seen = []
    for i in range(3):
        seen += [(s, idx) for s, idx, _ in styles.shard_pairs(prefs, i, 3)]
    assert sorted(seen) == sorted([("train", i) for i in range(7)] +
                                  [("test", i) for i in range(4)])
    with pytest.raises(GenerationError):
        styles.shard_pairs(prefs, 3, 3)


def test_shard_resumes_and_gather_builds_pref_sets(prefs, spec, tmp_path):
    n = 2
    shards = [tmp_path / f"shard-{i}-of-{n}.jsonl" for i in range(n)]
    # shard 0 crashes after 2 rewrites; shard 1 is unaffected
    crash = FakeBackend(fail_after=2)
    with pytest.raises(RuntimeError):
        styles.run_shard(crash, prefs, "sycophantic", 0, n, spec, shards[0])
    assert not shards[0].exists() and len(read_jsonl(partial_path(shards[0]))) == 2

    def answer(req):
        if "chosen 3" in req.messages[0]["content"]:
            return "", "stop"
        if "chosen 4" in req.messages[0]["content"]:
            return "cut", "length"
        return "Here is the rewritten answer:\nWhat a brilliant question!", "stop"

    b1 = FakeBackend(answer)
    styles.run_shard(b1, prefs, "sycophantic", 1, n, spec, shards[1])
    b0 = FakeBackend(answer)
    styles.run_shard(b0, prefs, "sycophantic", 0, n, spec, shards[0])
    assert not set(b0.seen) & set(crash.seen)  # resumed: no request made twice
    assert len(b0.seen) + len(crash.seen) + len(b1.seen) == 11

    out = tmp_path / "ultrafeedback-sycophantic"
    stats = styles.gather(shards, "sycophantic", spec, out)
    train = read_jsonl(out / "train.jsonl")
    test = read_jsonl(out / "test.jsonl")
    assert [r["id"] for r in train] == [f"train{i}" for i in range(7)]
    assert len(test) == 4
    assert train[0]["chosen"] == "Rewritten!"  # kept from the crashed run's partial file
    r = train[1]
    assert r["chosen"] == "What a brilliant question!" and r["rejected"] == "rejected 1"
    assert r["original_chosen"] == "chosen 1 {code}" and r["prompt"][0]["role"] == "user"
    assert (r["rewriter"], r["rewriter_revision"], r["source"]) == \
        ("rewriter-x", "rev1", "ultrafeedback-sycophantic")
    assert r["sampling"]["max_new_tokens"] == spec["sampling"]["max_new_tokens"]
    assert "preamble_stripped" in r["flags"]
    st = stats["splits"]
    assert st["train"]["empty"] == 1 and st["train"]["truncated"] == 1  # train3, train4
    assert st["train"]["tone_agnostic"] == 1 and st["test"]["tone_agnostic"] == 1
    assert read_json(out / "stats.json") == json.loads(json.dumps(stats))

    strict = dict(spec, drop_flagged=True, filter_tone_agnostic=True)
    stats = styles.gather(shards, "sycophantic", strict, tmp_path / "strict")
    kept = [r["id"] for r in read_jsonl(tmp_path / "strict" / "train.jsonl")]
    assert kept == ["train0", "train2", "train5", "train6"]
    assert stats["splits"]["train"]["dropped_flagged"] == 2


def test_eval_prompt_sets_are_reproducible(tmp_path):
    from prefbias.generation.prompts import draw_prompts

    p = tmp_path / "test.jsonl"
    write_jsonl(p, _pairs(30, "u"))
    a = draw_prompts(p, 8, 1234)
    assert a == draw_prompts(p, 8, 1234)
    assert a != draw_prompts(p, 8, 99)
    assert [r["id"] for r in draw_prompts(p, 5, 1234)] == [r["id"] for r in a[:5]]
    assert set(a[0]) == {"id", "messages", "source"} and a[0]["messages"][-1]["role"] == "user"
    assert len(draw_prompts(p, 100, 1)) == 30
