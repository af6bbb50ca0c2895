"""Evaluation subcommands: LLM judge, judge agreement, reward win rate, sycophancy tasks."""

from __future__ import annotations

import argparse
import logging

from prefbias.cli import spec_arg
from prefbias.plan import JUDGE_WHICH

log = logging.getLogger("prefbias.evaluate")


def _errors():
    from prefbias.evaluation.judge import ApiError, ApiKeyError
    from prefbias.generation.base import GenerationError
    from prefbias.models.load import ModelLoadError

    return (ApiKeyError, ApiError, ModelLoadError, GenerationError)


def _guard(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            fn(args)
        except _errors() as e:
            log.error("%s", e)
            return 1
        return 0

    return run


@_guard
def cmd_judge(args: argparse.Namespace) -> None:
    from prefbias.evaluation.judge import resolve_judge_spec, run_judge

    spec = resolve_judge_spec(args.spec, args.which)
    run_judge(spec, args.generations, args.out, args.summary, model_dir=args.judge_model_dir,
              cache_dir=args.cache_dir, model_name=args.model)


@_guard
def cmd_judge_check(args: argparse.Namespace) -> None:
    from prefbias.evaluation.judge_check import run_judge_check

    run_judge_check(args.spec, args.pairs, args.out, args.summary,
                    model_dir=args.judge_model_dir, cache_dir=args.cache_dir)


@_guard
def cmd_agreement(args: argparse.Namespace) -> None:
    from prefbias.evaluation.agreement import judge_agreement
    from prefbias.evaluation.judge import resolve_judge_spec

    a, b = resolve_judge_spec(args.spec), resolve_judge_spec(args.spec, "second")
    judge_agreement(args.first, args.second, a["dimensions"], args.out,
                    judges={"first": a["model"], "second": b["model"]})


@_guard
def cmd_reward(args: argparse.Namespace) -> None:
    from prefbias.evaluation.reward import run_reward_winrate

    run_reward_winrate(args.spec, args.generations, args.baseline_generations, args.out,
                       model_name=args.model, reward_model_dir=args.reward_model_dir,
                       cache_dir=args.cache_dir)


def _generate_fn(args: argparse.Namespace):
    from prefbias.evaluation.sycophancy import backend_generate

    return backend_generate(args.spec["backend"], args.model_dir, args.spec["sampling"],
                            **args.spec["backend_options"])


@_guard
def cmd_dialogues(args: argparse.Namespace) -> None:
    from prefbias.evaluation.sycophancy import generate_task

    generate_task(args.task, args.spec, args.data, args.out, _generate_fn(args),
                  model_name=args.model)


@_guard
def cmd_grade(args: argparse.Namespace) -> None:
    from prefbias.evaluation.sycophancy import grade_task

    grade_task(args.task, args.spec, args.data, args.dialogues, args.out, args.scores,
               cache_dir=args.cache_dir)


def register(sub) -> None:
    p = sub.add_parser("judge", help="LLM-as-a-judge scores of one model's generations")
    p.add_argument("--spec", type=spec_arg, required=True, help="config['judge'] as JSON")
    p.add_argument("--generations", required=True)
    p.add_argument("--out", required=True, help="per-prompt JSONL")
    p.add_argument("--summary", required=True, help="per-dimension summary JSON")
    p.add_argument("--model", help="id of the judged model (recorded in rows)")
    p.add_argument("--judge-model-dir", help="local judge model directory (backend hf)")
    p.add_argument("--cache-dir", help="disk cache of API answers")
    p.add_argument("--which", choices=sorted(set(JUDGE_WHICH.values())), default="primary",
                   help="'second': use judge.second_judge merged over judge")
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("judge-check", help="does the judge rank relevant over off-topic answers?")
    p.add_argument("--spec", type=spec_arg, required=True, help="config['judge'] as JSON")
    p.add_argument("--pairs", required=True, help="JSONL of {id, prompt, relevant, off_topic}")
    p.add_argument("--out", required=True, help="per-row JSONL")
    p.add_argument("--summary", required=True, help="win rate and mean scores, JSON")
    p.add_argument("--judge-model-dir", help="local judge model directory (backend hf)")
    p.add_argument("--cache-dir", help="disk cache of API answers")
    p.set_defaults(func=cmd_judge_check)

    p = sub.add_parser("judge-agreement", help="agreement of the two configured judges")
    p.add_argument("--spec", type=spec_arg, required=True, help="config['judge'] as JSON")
    p.add_argument("--first", nargs="+", required=True)
    p.add_argument("--second", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser("reward-winrate", help="reward-model win rate vs the baseline model")
    p.add_argument("--spec", type=spec_arg, required=True, help="config['reward_winrate']")
    p.add_argument("--generations", required=True)
    p.add_argument("--baseline-generations", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--reward-model-dir", help="reward model directory (backend hf)")
    p.add_argument("--cache-dir")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_reward)

    for name, task, help_ in (("sycophancy-answer", "answer",
                               "Answer Suggestion task: the model's answers (ungraded)"),
                              ("sycophancy-ays", "are_you_sure",
                               "Are You Sure task: the model's dialogues (ungraded)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--spec", type=spec_arg, required=True, help="config['sycophancy']")
        p.add_argument("--data", required=True)
        p.add_argument("--model-dir", required=True)
        p.add_argument("--model", required=True)
        p.add_argument("--out", required=True, help="dialogues JSONL")
        p.set_defaults(func=cmd_dialogues, task=task)

    p = sub.add_parser("sycophancy-grade", help="grade a model's sycophancy dialogues, score them")
    p.add_argument("--task", choices=["answer", "are_you_sure"], required=True)
    p.add_argument("--spec", type=spec_arg, required=True, help="config['sycophancy']")
    p.add_argument("--data", required=True, help="the task's data file (gold answers)")
    p.add_argument("--dialogues", required=True, help="output of sycophancy-answer/-ays")
    p.add_argument("--out", required=True, help="graded per-row JSONL")
    p.add_argument("--scores", required=True, help="scores JSON")
    p.add_argument("--cache-dir", help="disk cache of the LLM grader's answers")
    p.set_defaults(func=cmd_grade)
