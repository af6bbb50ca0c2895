"""prefbias.rule_table is the one table of what each rule needs: it holds exactly the rules of
Snakemake's own ``workflow.rules``, and every job's image, --spec and localrule status is what the
table gives for the job's wildcards (read from the planned jobs, not by parsing rules/*.smk)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from prefbias import rule_table
from prefbias.hpc import hook, needs, resources
from prefbias.jobspec import job_spec_json
from tests.support.job_params import planned_workflow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"paper": ["config.yaml"], "tiny": ["config.yaml", "configs/tiny.yaml"]}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def planned(request, monkeypatch_module):
    """(config, rules, localrules, jobs, images) of the whole DAG of a config, as Snakemake plans
    it; images: what the Slurm preflight checks (prefbias.hpc.hook)."""
    for var in ("PREFBIAS_INTERNET_PARTITION", "PREFBIAS_INTERNET_GPU_PARTITION"):
        monkeypatch_module.delenv(var, raising=False)
    with planned_workflow(CONFIGS[request.param]) as wf:
        jobs = [(j.rule, dict(j.wildcards.items()), j.container_img_url, dict(j.params.items()))
                for j in wf.dag.jobs]
        config = dict(wf.config)
        images = hook._images(wf, config, [r.name for r in wf.rules])
        return config, list(wf.rules), set(wf._localrules), jobs, images


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _targets(rules) -> set[str]:
    """Target rules (`rule all`, the report items' named targets): no command, need nothing."""
    return {r.name for r in rules if r.norun}


def test_the_table_holds_exactly_the_workflows_rules(planned):
    _, rules, _, _, _ = planned
    runs = {r.name for r in rules} - _targets(rules)
    assert sorted(runs - set(rule_table.RULES)) == [], "rules without a prefbias.rule_table entry"
    assert sorted(set(rule_table.RULES) - runs) == [], "table entries that are no rule"


def test_localrules_are_the_tables(planned):
    config, rules, local, _, _ = planned
    assert local - _targets(rules) == set(resources.local_rules(config))
    for rule in rule_table.DOWNLOAD_RULES:
        assert rule in local


def test_every_job_runs_in_the_image_the_table_gives_for_its_wildcards(planned):
    config, _, _, jobs, _ = planned
    containers = config["containers"]
    seen = set()
    for rule, wc, url, _ in jobs:
        if rule.norun:
            continue
        seen.add(rule.name)
        if rule_table.entry(rule.name).container:
            assert url == containers[needs.image_name(config, rule.name, **wc)], (rule.name, wc)
            assert (ROOT / "containers" / f"{needs.image_name(config, rule.name, **wc)}.def"
                    ).exists()
        else:
            assert url is None and not (rule.shellcmd or rule.script), rule.name
    assert {"train_sft", "helm_run"} <= seen
    # the demo generates nothing on its random-weight stylized-dpo stand-ins
    assert ("generate" in seen) != config["report"]["skip_random_stand_in_evals"]


def test_preflight_checks_the_images_of_the_planned_jobs(planned):
    config, _, _, jobs, images = planned
    urls = {(r.name, config["containers"][needs.image_name(config, r.name, **wc)])
            for r, wc, *_ in jobs if r.shellcmd or r.script}
    names = [r for r, _ in urls]  # a rule whose jobs use several images (per-model backend)
    want = {(r if names.count(r) == 1 else f"{r}[{url}]"): url for r, url in urls}
    assert images == want


def test_every_job_gets_the_spec_the_table_reads(planned):
    """A rule whose entry says what it reads passes exactly that as its --spec; no other rule
    passes a hand-written spec beside the table."""
    config, _, _, jobs, _ = planned
    for rule, wc, _, params in jobs:
        reads = rule_table.entry(rule.name).reads
        if reads is not None:
            assert params.get("spec") == job_spec_json(config, rule.name, **wc), rule.name
        elif "spec" in params:  # the report items' specs come from prefbias.plan.report_spec
            assert rule.name in ("table", "figure"), rule.name
            json.loads(params["spec"])


def test_backend_sections_have_the_backends_the_images_know():
    import yaml

    schema = yaml.safe_load((ROOT / "src/prefbias/schemas/config.schema.yaml").read_text())
    for rule, section in rule_table.BACKEND_SECTION.items():
        backends = schema["properties"][section]["properties"]["backend"]["enum"]
        assert set(backends) <= set(needs.BACKEND_IMAGE), (rule, backends)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("prefbias.")}


def test_hpc_modules_import_downwards_only():
    """No import circle (function-level imports included): the table and plan at the bottom,
    then needs, site, resources, and the modules that use them; the table, the job specs and the
    rule helpers never import the evaluation code."""
    src = ROOT / "src" / "prefbias"
    order = ["prefbias.plan", "prefbias.rule_table", "prefbias.jobspec", "prefbias.hpc.needs",
             "prefbias.hpc.site", "prefbias.hpc.resources", "prefbias.hpc.gpu",
             "prefbias.hpc.preflight", "prefbias.hpc.hook", "prefbias.commands.hpc"]
    for i, mod in enumerate(order):
        path = src / Path(*mod.split(".")[1:]).with_suffix(".py")
        above = set(order[i + 1:])
        got = {m for m in _imports(path) if any(m == a or m.startswith(a + ".") for a in above)}
        assert got == set(), f"{mod} imports {got}, which import it"
    for path in (src / "rule_table.py", src / "jobspec.py"):
        assert not {m for m in _imports(path) if m.startswith("prefbias.evaluation.judge")}
    common = (ROOT / "rules" / "common.smk").read_text()
    assert "prefbias.evaluation" not in common
