"""``prefbias helm-run`` / ``prefbias helm-summarize``: HELM for stylized-dpo §5.1.2, Tables 4-8."""

from __future__ import annotations

import argparse
import logging

from prefbias.cli import spec_arg

log = logging.getLogger("prefbias.helm")


def register(sub: argparse._SubParsersAction) -> None:
    from prefbias.evaluation.helm_summary import SCENARIOS

    p = sub.add_parser(
        "helm-run", help="run crfm-helm on one local checkpoint and one or more scenarios",
        description="Run crfm-helm 0.5.16 (its own environment, .venv-helm) on one checkpoint "
                    "and one or more scenarios (one helm-run); write {accuracy, calibration, "
                    "robustness, fairness} per scenario.")
    p.add_argument("--model-dir", required=True, help="from_pretrained directory")
    p.add_argument("--model-name", required=True, help="model id (HELM name: local/<id>-<hash>)")
    p.add_argument("--scenario", required=True, nargs="+", choices=SCENARIOS,
                   help="one or more scenarios, run together in one helm-run")
    p.add_argument("--spec", required=True, type=spec_arg, help="config 'helm' section as JSON")
    p.add_argument("--fixtures", default=None,
                   help="pre-placed scenario data (default: spec 'fixtures'; none = HELM "
                        "downloads)")
    p.add_argument("--outdir", required=True, help="HELM working directory (work/.../helm/...)")
    p.add_argument("--stats", required=True, nargs="+",
                   help="output JSON per scenario, in --scenario order "
                        "(results/.../eval/helm/<model>/<scenario>.json)")
    p.add_argument("--disable-cache", action="store_true",
                   help="pass --disable-cache to helm-run (the model name already carries the "
                        "weights hash, so the cache never serves another checkpoint)")
    p.add_argument("--threads", type=int, default=1, help="helm-run --num-threads")
    p.set_defaults(func=run_cmd)

    st = sub.add_parser(
        "helm-stage", help="download HELM's scenario data with HELM's own code (login node)",
        description="Run crfm-helm's downloaders (scenario get_instances, perturbation word "
                    "lists, NLTK punkt_tab) for the configured scenarios into --out, which the "
                    "helm_run jobs read as --fixtures on compute nodes without internet.")
    st.add_argument("--spec", required=True, type=spec_arg, help="config 'helm' section as JSON")
    st.add_argument("--out", required=True, help="staged data directory (created atomically)")
    st.add_argument("--fixtures", default=None,
                    help="pre-placed data laid down first (default: spec 'fixtures'); HELM "
                         "then finds every file and downloads nothing")
    st.add_argument("--timeout-s", type=float, default=None)
    st.set_defaults(func=stage_cmd)

    s = sub.add_parser(
        "helm-summarize", help="HELM group tables with mean win rate (Tables 4-8)",
        description="Build R/eval/helm/<group>.csv (accuracy, calibration, robustness, "
                    "fairness) and summary.csv (Table 4) from per-run stats JSONs.")
    s.add_argument("--stats-dir", required=True, help="directory with <model>/<scenario>.json")
    s.add_argument("--spec", required=True, type=spec_arg,
                   help="config sections seeds, sft, dpo, styles, orpo (for prefbias.plan)")
    s.add_argument("--outdir", required=True, help="where <group>.csv and summary.csv go")
    s.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds to include (default: spec 'seeds'); rows average over seeds")
    s.add_argument("--allow-missing", action="store_true",
                   help="treat missing stats files as missing cells instead of failing")
    s.set_defaults(func=summarize_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    from prefbias.evaluation.helm_run import HelmError, helm_run

    fixtures = args.fixtures or args.spec.get("fixtures")
    if len(args.stats) != len(args.scenario):
        log.error("helm-run: %d --scenario but %d --stats paths (one per scenario, same order)",
                  len(args.scenario), len(args.stats))
        return 2
    try:
        helm_run(model_dir=args.model_dir, model_name=args.model_name, scenario=args.scenario,
                 spec=args.spec, outdir=args.outdir, stats_path=args.stats, fixtures=fixtures,
                 disable_cache=args.disable_cache, threads=args.threads)
    except HelmError as e:
        log.error("%s", e)
        return 1
    return 0


def stage_cmd(args: argparse.Namespace) -> int:
    from prefbias.evaluation.helm_env import HelmError
    from prefbias.evaluation.helm_stage import stage

    try:
        manifest = stage(args.spec, args.out, fixtures=args.fixtures or args.spec.get("fixtures"),
                         timeout_s=args.timeout_s)
    except (HelmError, FileExistsError) as e:
        log.error("%s", e)
        return 1
    log.info("staged %d HELM run entries (%d files) in %s", len(manifest["entries"]),
             len(manifest["files"]), args.out)
    return 0


def summarize_cmd(args: argparse.Namespace) -> int:
    from prefbias.evaluation.helm_summary import summarize

    n = summarize(args.stats_dir, args.spec, args.outdir, args.seeds,
                  allow_missing=args.allow_missing)
    log.info("HELM tables for %d models written to %s", n, args.outdir)
    return 0
