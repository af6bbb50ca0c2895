"""Training subcommands: train-sft, ref-logps, train-dpo, train-orpo."""

from __future__ import annotations

import argparse

from prefbias.cli import spec_arg


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-id", required=True, help="trained model id (sft-s0, dpo-...)")
    p.add_argument("--init", required=True, help="model directory training starts from")
    p.add_argument("--spec", required=True, type=spec_arg, help="config section as JSON")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, help="output model directory (written atomically)")
    p.add_argument("--metrics", required=True, help="metrics.jsonl output")
    p.add_argument("--summary", required=True, help="summary.json output")
    p.add_argument("--ckpt", required=True, help="checkpoint directory (resumed if present)")
    p.add_argument("--eval-examples", default=None,
                   help="eval_examples.jsonl output: per example of the final eval")
    p.add_argument("--tracking", type=spec_arg, default=None,
                   help="config section tracking as JSON (report_to: tensorboard, wandb, mlflow)")
    p.add_argument("--tracking-dir", default=None,
                   help="where W&B (offline) and an MLflow file store write (work/<run>/tracking)")
    p.add_argument("--tb", default=None, help="output directory that keeps the TensorBoard "
                   "event files (results/<run>/train/<model>/tb)")


def _track(a) -> dict:
    return {"tracking": a.tracking, "tracking_dir": a.tracking_dir, "tb": a.tb}


def _sft(a):
    from prefbias.train.recipes import train_sft

    train_sft(model_id=a.model_id, init=a.init, train=a.train, eval=a.eval, spec=a.spec,
              seed=a.seed, out=a.out, metrics=a.metrics, summary=a.summary, ckpt=a.ckpt,
              eval_examples=a.eval_examples, **_track(a))


def _dpo(a):
    from prefbias.train.recipes import train_dpo

    train_dpo(model_id=a.model_id, init=a.init, train=a.train, train_refs=a.train_refs,
              eval=a.eval, eval_refs=a.eval_refs, spec=a.spec, seed=a.seed, out=a.out,
              metrics=a.metrics, summary=a.summary, ckpt=a.ckpt, eval_examples=a.eval_examples,
              **_track(a))


def _orpo(a):
    from prefbias.train.recipes import train_orpo

    train_orpo(model_id=a.model_id, init=a.init, train=a.train, spec=a.spec, seed=a.seed,
               out=a.out, metrics=a.metrics, summary=a.summary, ckpt=a.ckpt,
               eval_examples=a.eval_examples, **_track(a))


def _refs(a):
    from prefbias.train import refs

    spec = a.spec
    refs.compute(a.model, a.prefs, a.out, max_length=spec["max_length"],
                 batch_size=a.batch_size or spec["batch_size"], long_prompts=spec["long_prompts"])


def register(sub) -> None:
    p = sub.add_parser("train-sft", help="supervised fine-tuning (config section sft)")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--eval", default=None)
    p.set_defaults(func=_sft)

    p = sub.add_parser("train-dpo", help="DPO from precomputed reference log-probs (section dpo)")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--train-refs", required=True)
    p.add_argument("--eval", default=None, help="test split; omitted: seeded hold-out of train")
    p.add_argument("--eval-refs", default=None)
    p.set_defaults(func=_dpo)

    p = sub.add_parser("train-orpo", help="ORPO + LoRA (config section orpo)")
    _common(p)
    p.add_argument("--train", required=True, nargs="+", help="preference sets of the mix")
    p.set_defaults(func=_orpo)

    p = sub.add_parser("ref-logps", help="reference-model log-probs of a preference set")
    p.add_argument("--model", required=True, help="reference model directory")
    p.add_argument("--prefs", required=True, help="preference pairs jsonl")
    p.add_argument("--spec", required=True, type=spec_arg, help="dpo section (max_length)")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=None)
    p.set_defaults(func=_refs)
