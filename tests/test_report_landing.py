"""The HTML report's landing page names the run, the commit and the seeds (issue 16)."""

from __future__ import annotations

import subprocess

from prefbias.report.html import landing_page


def test_landing_page_names_run_commit_and_seeds(tiny_config, repo_root):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True,
                          text=True, check=True).stdout.strip()
    text = landing_page(tiny_config, repo_root)
    first = text.splitlines()[0]
    assert "``tiny``" in first and head in first and "**seeds** 0" in first
    assert "Stylized preference alignment" in text  # report/workflow.rst follows


def test_landing_page_outside_git(tiny_config, repo_root, tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "workflow.rst").write_text("body\n")
    text = landing_page(tiny_config, tmp_path)
    assert "unknown (not a git checkout)" in text and text.endswith("body\n")


def test_landing_page_says_what_ran(tiny_config, paper_config, repo_root):
    """Issue 15.5: a run of random-weight stand-ins says so on the landing page; the paper's
    models do not get the warning."""
    text = landing_page(tiny_config, repo_root)
    assert ".. warning:: Built from random-weight tiny stand-ins of Qwen2.5-0.5B" in text
    assert ("``smollm2-135m-instruct``: SmolLM2-135M-Instruct (stand-in for Mistral-7B-v0.2)"
            in text)
    paper = landing_page(paper_config, repo_root)
    assert ".. warning::" not in paper
    assert "``mistral-7b-it-v0.2``: Mistral-7B-v0.2;" in paper


def test_captions_render_for_every_item(tiny_config, paper_config, repo_root):
    """report/table.rst, figure.rst and vs_paper.rst render (Jinja as Snakemake's report, then
    reStructuredText) for every item; the stand-in notice heads them in a tiny run only."""
    from types import SimpleNamespace

    from docutils.core import publish_parts
    from jinja2 import Environment

    from prefbias import plan

    env = Environment(trim_blocks=True, lstrip_blocks=True)
    for config in (tiny_config, paper_config):
        for name, item in plan.REPORT_ITEMS.items():
            notice = plan.report_spec(config, name)["notice"]
            sm = SimpleNamespace(config=config, params=SimpleNamespace(notice=notice),
                                 wildcards=SimpleNamespace(**{item.kind: name}))
            for caption in (item.kind, "vs_paper"):
                text = env.from_string((repo_root / "report" / f"{caption}.rst").read_text())
                rst = text.render(snakemake=sm)
                html = publish_parts(rst, writer_name="html",
                                     settings_overrides={"halt_level": 2})["body"]
                random = config is tiny_config and name != "judge_check"  # the judge alone
                assert ("random-weight tiny stand-ins" in html) == random, name
                if caption == item.kind:  # the item's own text, naming its paper
                    assert item.paper in html, (name, html)
