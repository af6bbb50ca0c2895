"""docs/HPC.md's rule-by-rule table (image, GPUs, internet, credentials, where it runs) is what
prefbias.hpc.needs computes for config.yaml: the docs cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from prefbias.commands.hpc import container_calls
from prefbias.hpc import resources

ROOT = Path(__file__).resolve().parents[1]


def _localrules() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    out: set[str] = set()
    for block in re.findall(r"^localrules:\s*\n((?:\s+\w+,\n)+)", text, re.M):
        out |= set(re.findall(r"\w+", block))
    return out


def test_docs_rule_table_matches_the_code(paper_config, monkeypatch):
    monkeypatch.delenv("PREFBIAS_INTERNET_PARTITION", raising=False)
    text = (ROOT / "docs" / "HPC.md").read_text()
    block = text.split("<!-- needs-table:start -->", 1)[1].split("<!-- needs-table:end -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in block.strip().splitlines()[2:]]
    documented = {r[0]: r[1:] for r in rows}
    rules = sorted(container_calls(ROOT))
    assert sorted(documented) == rules
    local = _localrules() | set(resources.api_local_rules(paper_config, rules))
    for row in resources.table(paper_config, rules):
        where = ("login node (localrule)" if row["rule"] in local
                 else "gpu partition" if row["gpus"] else "cpu partition")
        want = [row["image"], str(row["gpus"]), "yes" if row["internet"] else "no",
                ", ".join(row["credentials"]) or "-", where]
        assert documented[row["rule"]] == want, row["rule"]
