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
