"""LLM-as-a-judge (stylized-dpo §5.1.1, App. B.1).

* API judges talk through the shared client :class:`prefbias.api_client.ApiClient` (disk cache,
  bounded concurrency, requests-per-minute limiter, bounded retries with backoff and a capped
  Retry-After, token + cost log, key only from the environment) — the same client generation, the
  sycophancy LLM grader and the API reward model use.
* :func:`judge_openai` — the B.1 prompt, JSON answers (``` fences stripped) validated against a
  JSON schema; unparseable answers are re-asked up to ``max_parse_retries`` times, then recorded
  as missing (counted, never dropped or invented). ``score_mode: prob_weighted`` uses
  ``logprobs``/``top_logprobs`` to take the expectation over the tokens "1".."5".
* :class:`HFJudge` — a local causal LM as judge. ``prob_weighted`` teacher-forces the JSON keys
  and reads the next-token distribution over "1".."5" at each score position (expected score);
  ``parse`` decodes greedily and parses like the API judge.
* ``score_mode: yes_no`` (both backends) asks one yes/no question per criterion
  (``judge.yes_no``) and scores it 1 + 4·P(yes | yes or no), read from the first answer token. A
  135M judge is blind under the paper's B.1 prompt (relevant vs off-topic answers ranked right on
  3 of 8 hand-made pairs) but ranks them under yes/no questions (tests/test_real_model.py), so
  the offline demo uses this mode; the paper config keeps B.1.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema

from prefbias.api_client import (  # noqa: F401 - ApiError/ApiKeyError/run_parallel re-exported
    ApiClient,
    ApiError,
    ApiKeyError,
    make_client,
    run_parallel,
)
from prefbias.evaluation.stats import bootstrap_args, summarize
from prefbias.io import DataError, UniqueIds, check_field, iter_jsonl, write_json, write_jsonl
from prefbias.plan import resolve_judge_spec  # noqa: F401 - re-exported (the CLI, tests)

log = logging.getLogger(__name__)

DIGITS = ("1", "2", "3", "4", "5")
#: how each score_mode turns the judge's answer into a 1-5 score (table and figure captions)
SCORE_MODES = {
    "parse": "integer scores parsed from the judge's JSON answer",
    "prob_weighted": "expected score over the judge's probabilities of the digits 1-5",
    "yes_no": "1 + 4·P(yes) to one yes/no question per criterion",
}


# ---------------------------------------------------------------------------------------------
# Prompt, parsing, validation
# ---------------------------------------------------------------------------------------------
def fill_template(template: str, **values: str) -> str:
    """Single-pass ``{name}`` substitution (the judge prompt contains literal JSON braces)."""
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
    return pattern.sub(lambda m: values[m.group(1)], template)


def prompt_text(messages: Sequence[dict[str, str]]) -> str:
    """The user prompt shown to the judge: the user turn, or the whole context if multi-turn."""
    turns = [m for m in messages if m.get("role") != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def judge_schema(dimensions: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [*dimensions, "reasons"],
        "properties": {
            **{d: {"type": "integer", "minimum": 1, "maximum": 5} for d in dimensions},
            "reasons": {"type": "object", "required": list(dimensions),
                        "properties": {d: {"type": "string"} for d in dimensions}},
        },
    }


class JudgeParseError(ValueError):
    pass


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    m = _FENCE.search(text)
    body = m.group(1) if m else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise JudgeParseError("no JSON object in the answer")
    try:
        return json.loads(body[start:end + 1])
    except json.JSONDecodeError as e:
        raise JudgeParseError(f"invalid JSON: {e.msg}") from None


def parse_judge_answer(text: str, dimensions: Sequence[str]) -> tuple[dict[str, int], dict]:
    obj = extract_json(text)
    try:
        jsonschema.validate(obj, judge_schema(dimensions))
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "<root>"
        raise JudgeParseError(f"schema violation at {where}: {e.message}") from None
    return {d: int(obj[d]) for d in dimensions}, {d: obj["reasons"][d] for d in dimensions}


def expected_digit(top: dict[str, float]) -> float | None:
    """Expectation over "1".."5" from a token -> logprob map (renormalised over the digits)."""
    import math

    probs: dict[int, float] = {}
    for tok, lp in top.items():
        t = tok.strip()
        if t in DIGITS:
            probs[int(t)] = probs.get(int(t), 0.0) + math.exp(lp)
    total = sum(probs.values())
    if total <= 0:
        return None
    return sum(k * p for k, p in probs.items()) / total


def prob_weighted_from_logprobs(text: str, logprobs: list[dict], dimensions: Sequence[str],
                                parsed: dict[str, int]) -> dict[str, float]:
    """Find each score's digit token in the answer and take the expectation over its
    top_logprobs; falls back to the parsed integer where the token cannot be located."""
    offsets, pos = [], 0
    for t in logprobs:
        offsets.append((pos, pos + len(t["token"])))
        pos += len(t["token"])
    joined = "".join(t["token"] for t in logprobs)
    out: dict[str, float] = {}
    for d in dimensions:
        m = re.search(r'"' + re.escape(d) + r'"\s*:\s*([1-5])', joined)
        value: float | None = None
        if m:
            c = m.start(1)
            for (a, b), t in zip(offsets, logprobs, strict=True):
                if a <= c < b and t["token"].strip() == m.group(1):
                    value = expected_digit(t["top"])
                    break
        out[d] = float(value) if value is not None else float(parsed[d])
    return out


def yes_no_score(top: dict[str, float]) -> tuple[float | None, float]:
    """1 + 4·P(yes | yes or no) from a token -> logprob map ("Yes", " yes", ... pooled), and the
    probability mass on the two words (None when neither is there)."""
    import math

    p = {"yes": 0.0, "no": 0.0}
    for tok, lp in top.items():
        word = tok.strip().lower()
        if word in p:
            p[word] += math.exp(lp)
    total = p["yes"] + p["no"]
    return (1.0 + 4.0 * p["yes"] / total if total > 0 else None), total


def yes_no_prompts(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, str]:
    """One filled ``judge.yes_no.template`` per dimension."""
    yn = spec.get("yes_no")
    if not yn:
        raise ValueError("judge.score_mode yes_no needs a judge.yes_no block (template, questions)")
    missing = [d for d in spec["dimensions"] if d not in yn["questions"]]
    if missing:
        raise ValueError(f"judge.yes_no.questions has no question for {', '.join(missing)}")
    prompt = prompt_text(row["messages"])
    return {d: fill_template(yn["template"], prompt=prompt, response=row["response"],
                             question=yn["questions"][d]) for d in spec["dimensions"]}


def _yes_no_row(rid: str, scores: dict[str, float | None], mass: dict[str, float]
                ) -> dict[str, Any]:
    lost = [d for d, v in scores.items() if v is None]
    return {"id": rid, "scores": scores, "reasons": {}, "missing": bool(lost), "attempts": 1,
            "error": f"no yes/no token for {', '.join(lost)}" if lost else None,
            "yes_no_mass": mass}


def judge_yes_no_api(client: ApiClient, spec: dict[str, Any], row: dict[str, Any],
                     abort: threading.Event | None = None) -> dict[str, Any]:
    scores: dict[str, float | None] = {}
    mass: dict[str, float] = {}
    for d, text in yes_no_prompts(spec, row).items():
        ans = client.complete([{"role": "user", "content": text}],
                              temperature=float(spec["temperature"]), max_tokens=1,
                              logprobs=True, top_logprobs=int(spec["top_logprobs"]), abort=abort)
        first = (ans.get("logprobs") or [{}])[0].get("top") or {}
        scores[d], mass[d] = yes_no_score(first)
    return _yes_no_row(row["id"], scores, mass)


REASK = ("Your previous reply could not be used ({error}). Reply again with only the JSON "
         "object, in exactly the format requested, with an integer from 1 to 5 for each "
         "criterion.")


def judge_one_api(client: ApiClient, spec: dict[str, Any], row: dict[str, Any],
                  abort: threading.Event | None = None) -> dict[str, Any]:
    if spec["score_mode"] == "yes_no":
        return judge_yes_no_api(client, spec, row, abort)
    dims = spec["dimensions"]
    prob = spec["score_mode"] == "prob_weighted"
    messages = [{"role": "user", "content": fill_template(
        spec["prompt"], prompt=prompt_text(row["messages"]), response=row["response"])}]
    errors: list[str] = []
    for attempt in range(int(spec["max_parse_retries"]) + 1):
        ans = client.complete(messages, temperature=float(spec["temperature"]),
                              max_tokens=int(spec["max_tokens"]), logprobs=prob,
                              top_logprobs=int(spec["top_logprobs"]) if prob else None,
                              abort=abort, variant=attempt)
        try:
            scores, reasons = parse_judge_answer(ans["text"], dims)
        except JudgeParseError as e:
            errors.append(str(e))
            messages = [*messages[:1], {"role": "assistant", "content": ans["text"]},
                        {"role": "user", "content": REASK.format(error=e)}]
            continue
        if prob and ans.get("logprobs"):
            scores = prob_weighted_from_logprobs(ans["text"], ans["logprobs"], dims, scores)
        return {"id": row["id"], "scores": scores, "reasons": reasons, "missing": False,
                "attempts": attempt + 1, "error": None}
    return {"id": row["id"], "scores": dict.fromkeys(dims), "reasons": {}, "missing": True,
            "attempts": len(errors), "error": errors[-1] if errors else "no answer"}


# ---------------------------------------------------------------------------------------------
# Local (hf) judge
# ---------------------------------------------------------------------------------------------
class HFJudge:
    def __init__(self, model_dir: str | Path, spec: dict[str, Any]):
        import torch

        from prefbias.models.load import load_causal_lm, load_tokenizer

        self.spec = spec
        self.dims = list(spec["dimensions"])
        self.tok = load_tokenizer(model_dir)
        self.model = load_causal_lm(model_dir).eval()
        self.device = next(self.model.parameters()).device
        self.torch = torch
        self.digit_ids = []
        for d in DIGITS:
            ids = self.tok.encode(d, add_special_tokens=False)
            if len(ids) != 1:
                raise DataError(model_dir, f"tokenizer splits the digit {d!r} into {len(ids)} "
                                           "tokens; prob_weighted scoring needs single tokens")
            self.digit_ids.append(ids[0])
        # "Yes", " yes", ...: every single-token spelling of the two answer words
        self.yes_no_ids = {w: ids[0] for w in ("Yes", "yes", "YES", " Yes", " yes", "No", "no",
                                                "NO", " No", " no")
                           if len(ids := self.tok.encode(w, add_special_tokens=False)) == 1}
        self._checked = False
        self.reuse_cache = True
        self._cache, self._cache_ids = None, []

    def _context(self, judge_prompt: str) -> str:
        messages = [{"role": "user", "content": judge_prompt}]
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=True)
        return judge_prompt + "\n"

    def _next_token_logprobs(self, text: str):
        """Log-probs of the token after ``text``. The dimensions of one answer share the long
        judge prompt: the KV cache of the previous call is kept and cut back to the longest
        common token prefix, so each call runs only the new tokens (same numbers as a full
        forward: tests/test_eval_judge.py)."""
        torch = self.torch
        ids = self.tok(text, add_special_tokens=False).input_ids
        n = 0
        if self.reuse_cache and self._cache is not None:
            limit = min(len(ids), len(self._cache_ids)) - 1  # at least one token to run
            while n < limit and ids[n] == self._cache_ids[n]:
                n += 1
        with torch.no_grad():
            if n:
                drop = len(self._cache_ids) - n
                if drop:
                    self._cache.crop(-drop)  # transformers 5: a negative count removes tokens
                out = self.model(input_ids=torch.tensor([ids[n:]], device=self.device),
                                 past_key_values=self._cache, use_cache=True)
            else:
                out = self.model(input_ids=torch.tensor([ids], device=self.device),
                                 use_cache=self.reuse_cache)
        self._cache, self._cache_ids = out.past_key_values, ids
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def score(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.spec["score_mode"] == "yes_no":
            return self._yes_no(row)
        judge_prompt = fill_template(self.spec["prompt"], prompt=prompt_text(row["messages"]),
                                     response=row["response"])
        context = self._context(judge_prompt)
        if self.spec["score_mode"] == "prob_weighted":
            return self._prob_weighted(row["id"], context)
        return self._parse(row["id"], context)

    def _prob_weighted(self, rid: str, context: str) -> dict[str, Any]:
        torch = self.torch
        forced = "{\n"
        scores: dict[str, float] = {}
        mass: dict[str, float] = {}
        for i, d in enumerate(self.dims):
            forced += f'  "{d}": '
            text = context + forced
            if not self._checked:
                self._check_boundary(text)
            lp = self._next_token_logprobs(text)
            p = torch.exp(lp[self.digit_ids])
            total = float(p.sum())
            probs = p / p.sum()
            scores[d] = float(sum((k + 1) * float(probs[k]) for k in range(5)))
            mass[d] = total
            best = DIGITS[int(torch.argmax(probs))]
            forced += best + (",\n" if i < len(self.dims) - 1 else "\n")
        return {"id": rid, "scores": scores, "reasons": {}, "missing": False, "attempts": 1,
                "error": None, "digit_mass": mass}

    def _yes_no(self, row: dict[str, Any]) -> dict[str, Any]:
        scores: dict[str, float | None] = {}
        mass: dict[str, float] = {}
        for d, text in yes_no_prompts(self.spec, row).items():
            lp = self._next_token_logprobs(self._context(text))
            scores[d], mass[d] = yes_no_score({w: float(lp[i])
                                               for w, i in self.yes_no_ids.items()})
        return _yes_no_row(row["id"], scores, mass)

    def _check_boundary(self, text: str) -> None:
        """The digit must be its own token after the forced prefix, or the distribution we read
        is not the one the model would use when writing the score."""
        base = self.tok(text, add_special_tokens=False).input_ids
        for d, did in zip(DIGITS, self.digit_ids, strict=True):
            full = self.tok(text + d, add_special_tokens=False).input_ids
            if full[:len(base)] != base or full[len(base):] != [did]:
                raise RuntimeError(f"prob_weighted judge: digit {d!r} does not tokenize as a "
                                   "separate token after the JSON key; cannot score")
        self._checked = True

    def _parse(self, rid: str, context: str) -> dict[str, Any]:
        ids = self.tok(context, add_special_tokens=False, return_tensors="pt").input_ids
        with self.torch.no_grad():
            out = self.model.generate(input_ids=ids.to(self.device), do_sample=False,
                                      max_new_tokens=int(self.spec["max_tokens"]),
                                      pad_token_id=self.tok.pad_token_id)
        text = self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        try:
            scores, reasons = parse_judge_answer(text, self.dims)
        except JudgeParseError as e:
            return {"id": rid, "scores": dict.fromkeys(self.dims), "reasons": {},
                    "missing": True, "attempts": 1, "error": str(e)}
        return {"id": rid, "scores": scores, "reasons": reasons, "missing": False,
                "attempts": 1, "error": None}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def read_generations(path: str | Path) -> list[dict[str, Any]]:
    """Generation rows to score: at least one, ids unique (a repeated id would be scored twice
    and weigh twice in the means; an empty file would give n=0 and no mean)."""
    rows = []
    ids = UniqueIds(path)
    for line, row in iter_jsonl(path):
        ids.add(check_field(row, "id", (str, int), path=path, line=line), line)
        check_field(row, "messages", list, path=path, line=line, nonempty=True)
        check_field(row, "response", str, path=path, line=line)
        rows.append(row)
    if not rows:
        raise DataError(path, "no generations: the file is empty (or only blank lines); a "
                        "judge or reward score of nothing is not a result")
    return rows


def make_api_client(spec: dict[str, Any], cache_dir: str | Path | None,
                    purpose: str = "judge") -> ApiClient:
    """The shared API client configured from a section (``judge``, ``reward_winrate``, ...)."""
    return make_client(spec, cache_dir, purpose=purpose,
                       section={"judge": "judge", "reward": "reward_winrate",
                                "sycophancy grader": "sycophancy.grader"}.get(purpose, purpose))


def score_rows(spec: dict[str, Any], rows: list[dict[str, Any]], *,
               model_dir: str | Path | None = None, cache_dir: str | Path | None = None
               ) -> list[dict[str, Any]]:
    """Judge rows of ``{id, messages, response}`` with the API or the local judge, in order."""
    backend = spec["backend"]
    if backend == "openai":
        client = make_api_client(spec, cache_dir)  # fails here if the key is missing
        results = run_parallel(rows, lambda r, abort: judge_one_api(client, spec, r, abort),
                               client.max_concurrency)
        client.log_usage()
        return results
    if backend != "hf":
        raise ValueError(f"judge backend {backend!r} is not supported (openai | hf)")
    if model_dir is None:
        raise ValueError("a local (hf) judge needs --judge-model-dir")
    hf = HFJudge(model_dir, spec)
    return [hf.score(r) for r in rows]


def run_judge(spec: dict[str, Any], generations: str | Path, out: str | Path,
              summary: str | Path, *, model_dir: str | Path | None = None,
              cache_dir: str | Path | None = None, model_name: str | None = None
              ) -> dict[str, Any]:
    """Judge every generation; write per-prompt rows and the per-dimension summary."""
    rows = read_generations(generations)
    log.info("judging %d responses from %s with %s (%s, %s)", len(rows), generations,
             spec["model"], spec["backend"], spec["score_mode"])
    results = score_rows(spec, rows, model_dir=model_dir, cache_dir=cache_dir)
    dims = spec["dimensions"]
    extra = {"judge": spec["model"], "score_mode": spec["score_mode"]}
    if model_name:
        extra["model"] = model_name
    write_jsonl(out, ({**r, **extra} for r in results))
    b = bootstrap_args(spec["bootstrap"])
    summ = {d: summarize([r["scores"][d] for r in results], n_boot=b["n"], seed=b["seed"],
                         ci=b["ci"]) for d in dims}
    write_json(summary, summ)
    n_missing = sum(r["missing"] for r in results)
    log.info("judge: %d rows, %d missing; wrote %s and %s", len(results), n_missing, out, summary)
    return summ
