"""Report pages a researcher reads without touching work/: sample pages, model and dataset
cards, the software-versions table (``prefbias report-pages``); and ``prefbias publish``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _config(a) -> dict:
    if a.config_json:  # the resolved config: JSON text, or a file of it (W/resolved_config.json)
        text = a.config_json.strip()
        return json.loads(text if text.startswith("{") else Path(text).read_text(encoding="utf-8"))
    from prefbias.config import load_config

    return load_config(*a.configfile)


def _pages(a) -> int:
    from prefbias.report import cards, samples, versions
    from prefbias.report.freeze import git_info

    config = _config(a)
    results, work = Path(a.results), Path(a.work)
    samples.write_pages(results, results / "samples", config=config, work=work,
                        max_rows=a.max_rows)
    commit = git_info(Path(__file__).resolve().parents[3]).get("commit")
    cards.write_cards(config, results, work, results / "cards", commit=commit)
    versions.write(config, results / "software_versions.yml",
                   results / "software_versions.html")
    return 0


def _publish(a) -> int:
    from prefbias import plan
    from prefbias.report import publish
    from prefbias.report.freeze import verify

    config = _config(a)
    results = Path(a.results or plan.resultdir(config))
    work = Path(a.work or plan.workdir(config))
    problems = verify(results)
    if problems:
        sys.stderr.write(f"{results} is not an intact frozen run ({problems[0]}; "
                         f"{len(problems)} problems): freeze it first\n")
        return 2
    uploads = publish.plan_uploads(config, results, work, a.namespace)
    private = not a.public
    sys.stdout.write(publish.listing(uploads, private) + "\n")
    if a.dry_run:
        sys.stdout.write(f"dry run: {len(uploads)} repositories, nothing uploaded\n")
        return 0
    publish.publish(uploads, private=private, endpoint=a.endpoint)
    return 0


def register(sub) -> None:
    p = sub.add_parser("report-pages", help="sample pages, model/dataset cards and the software "
                       "versions table of a run (results/<run>/samples, cards, software_versions)")
    p.add_argument("--results", required=True, help="results/<run>")
    p.add_argument("--work", required=True, help="work/<run> (data sets for the cards, samples)")
    p.add_argument("--config-json", default=None, help="the resolved config: JSON, or a JSON file")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"])
    p.add_argument("--max-rows", type=int, default=50,
                   help="rows per model and kind on the sample pages")
    p.set_defaults(func=_pages)

    p = sub.add_parser("publish", help="upload a frozen run's models and data sets to the "
                       "Hugging Face Hub (private; token from HF_TOKEN only)")
    p.add_argument("--namespace", required=True, help="Hub user or organisation")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"])
    p.add_argument("--config-json", default=None)
    p.add_argument("--results", default=None, help="default results/<run>")
    p.add_argument("--work", default=None, help="default work/<run>")
    p.add_argument("--public", action="store_true", help="public repositories (default private)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    p.add_argument("--endpoint", default=None, help="Hub endpoint (default huggingface_hub's)")
    p.set_defaults(func=_publish)
