"""Sycophancy effects and cost of the real SmolLM2-135M-Instruct on the demo's data (not a test).

    OMP_NUM_THREADS=1 python benchmarks/demo_effects.py [--questions 120] [--temperature 0]
        [--max-new-tokens 32] [--batch-size 16] [--ays]

Runs the pipeline's own code (prefbias.data.sycophancy_sets -> prefbias.evaluation.sycophancy,
``match`` grader, the ``hf`` backend) on tests/fixtures/data/sycophancy_eval/answer_demo.jsonl
(and, with --ays, are_you_sure_demo.jsonl) and prints the Answer Suggestion scores with their
paired-bootstrap 95% CIs, the Are You Sure revision rate, and the wall time of each task.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_model import ROOT, smollm2_dir  # noqa: E402  (puts src/ on sys.path)

DATA = ROOT / "tests" / "fixtures" / "data" / "sycophancy_eval"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--questions", type=int, default=None, help="first N questions (all)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--ays", action="store_true", help="also run Are You Sure")
    p.add_argument("--no-answer", action="store_true", help="skip Answer Suggestion")
    p.add_argument("--out", default=None, help="write per-row results here (JSONL)")
    a = p.parse_args()

    import torch

    from prefbias.config import load_config
    from prefbias.data.sycophancy_sets import answer_rows, are_you_sure_rows
    from prefbias.evaluation.grading import Grader
    from prefbias.evaluation.sycophancy import (
        _limit,
        answer_scores,
        are_you_sure_scores,
        backend_generate,
        run_answer,
        run_are_you_sure,
    )

    spec = load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml")["sycophancy"]
    sampling = {"temperature": a.temperature, "top_p": 1.0, "top_k": 0,
                "max_new_tokens": a.max_new_tokens, "seed": 0}
    model = smollm2_dir()
    t = time.perf_counter()
    gen = backend_generate("hf", model, sampling, batch_size=a.batch_size)
    print(f"threads: {torch.get_num_threads()}  model load: {time.perf_counter() - t:.1f}s  "
          f"sampling: {sampling}  batch_size: {a.batch_size}")
    grader = Grader({"kind": "match"})
    rows = answer_rows(DATA / "answer_demo.jsonl", spec["answer_templates"])
    rows = _limit(rows, {"max_questions": 0 if a.no_answer else a.questions})
    rows = [] if a.no_answer else rows
    t = time.perf_counter()
    res = run_answer(rows, gen, grader, spec["answer_templates"]) if rows else []
    dt = time.perf_counter() - t
    print(f"answer_suggestion: {len(rows)} prompts in {dt:.1f}s "
          f"({dt / max(len(rows), 1):.2f}s/prompt)")
    scores = answer_scores(res, n_boot=1000, seed=0, ci=0.95)
    pooled = answer_scores([{**r, "dataset": "all"} for r in res], n_boot=1000, seed=0, ci=0.95)
    for ds, per_t in {**scores, **pooled}.items():
        for tname, s in per_t.items():
            print(f"  {ds:16s} {tname:20s} acc={s['accuracy']:.3f} n={s['n']:3d} "
                  f"score={s['score']:+.3f} CI=[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]")
    if a.out:
        with open(a.out, "w") as fh:
            for r in res:
                fh.write(json.dumps(r) + "\n")
    if a.ays:
        rows = are_you_sure_rows(DATA / "are_you_sure_demo.jsonl")
        t = time.perf_counter()
        res = run_are_you_sure(rows, gen, grader, challenge=spec["are_you_sure_challenge"],
                               letter_followup=spec["are_you_sure_letter_followup"])
        dt = time.perf_counter() - t
        print(f"are_you_sure: {len(rows)} questions (3 turns) in {dt:.1f}s")
        for ds, s in are_you_sure_scores(res, n_boot=1000, seed=0, ci=0.95).items():
            print(f"  {ds}: first_accuracy={s['first_accuracy']:.3f} "
                  f"revision_rate={s['revision_rate']} "
                  f"CI=[{s['ci_low']}, {s['ci_high']}] n_first_correct={s['n_first_correct']} "
                  f"unparseable={s['n_unparseable']}")
        if a.out:
            with open(Path(a.out).with_suffix(".ays.jsonl"), "w") as fh:
                for r in res:
                    fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
