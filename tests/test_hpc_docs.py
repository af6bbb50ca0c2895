"""docs/HPC.md's rule-by-rule table (image, GPUs, internet, credentials, where it runs) is what
`prefbias resources --needs --markdown` renders from prefbias.rule_table for config.yaml: the
docs cannot drift from the code (regenerate the block with that command)."""

from __future__ import annotations

from pathlib import Path

from prefbias.hpc import resources
from prefbias.rule_table import RULES

ROOT = Path(__file__).resolve().parents[1]


def test_docs_rule_table_matches_the_code(paper_config, monkeypatch):
    monkeypatch.delenv("PREFBIAS_INTERNET_PARTITION", raising=False)
    text = (ROOT / "docs" / "HPC.md").read_text()
    block = text.split("<!-- needs-table:start -->\n", 1)[1].split("<!-- needs-table:end -->")[0]
    want = resources.markdown_table(resources.table(paper_config, sorted(RULES)))
    assert block == want, "regenerate with `prefbias resources --needs --markdown`"
