"""NaturalQuestions mode (issue 14 item 3): config helm.natural_qa_mode flows into the HELM run
entry; the default is open-book with the long-answer passage, as stylized-dpo Table 5's F1 of
.57-.63 for a 0.5B model implies (docs/REPORT-FIDELITY.md)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from prefbias.config import ConfigError, validate_config
from prefbias.evaluation import helm_run
from prefbias.report import paper

ROOT = Path(__file__).resolve().parents[1]
HELM_PY = ROOT / ".venv-helm" / "bin" / "python"


def test_default_mode_is_openbook_longans(paper_config, tiny_config):
    assert paper_config["helm"]["natural_qa_mode"] == "openbook_longans"
    assert helm_run.run_entries(paper_config["helm"], "natural_qa", "local/m") == [
        "natural_qa:mode=openbook_longans,data_augmentation=canonical,model=local/m"]
    # the demo runs the same mode (num_output_tokens capped as before)
    assert helm_run.run_entries(tiny_config["helm"], "natural_qa", "local/m") == [
        "natural_qa:mode=openbook_longans,data_augmentation=canonical,model=local/m,"
        "num_output_tokens=8"]


def test_closedbook_stays_selectable(paper_config):
    spec = {**paper_config["helm"], "natural_qa_mode": "closedbook"}
    assert helm_run.run_entries(spec, "natural_qa", "local/m") == [
        "natural_qa:mode=closedbook,data_augmentation=canonical,model=local/m"]
    # no key in the config: the schema's default, filled where the config is loaded
    bare = copy.deepcopy(paper_config)
    del bare["helm"]["natural_qa_mode"]
    validate_config(bare)
    assert "mode=openbook_longans," in helm_run.run_entries(bare["helm"], "natural_qa", "m")[0]
    # the run directories of either mode still go back to natural_qa
    assert helm_run.run_function(spec, "natural_qa") == "natural_qa"


def test_template_without_mode_is_an_error(paper_config):
    spec = copy.deepcopy(paper_config["helm"])
    spec["scenarios"]["natural_qa"] = "natural_qa:mode=closedbook"
    with pytest.raises(ValueError, match=r"has no '\{mode\}'.*helm.natural_qa_mode"):
        helm_run.run_entries(spec, "natural_qa", "m")


def test_schema_rejects_unknown_mode(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["helm"]["natural_qa_mode"] = "open"
    with pytest.raises(ConfigError, match="natural_qa_mode"):
        validate_config(cfg)


def test_notes_state_the_evidence():
    for t in ("table4", "table5", "table6", "table7", "table8"):
        note = paper.reported_table(t)["vs_paper_note"]
        assert "openbook_longans" in note and "closed-book" in note, t
    for t in ("table7", "table8"):
        note = paper.reported_table(t)["vs_paper_note"]
        assert "MMLU and HellaSwag" in note and "equal the accuracy" in note, t
    # ... and the paper's numbers really do: Tables 7/8 MMLU and HellaSwag == Table 5's
    acc = paper.reported_table("table5")
    for t in ("table7", "table8"):
        rep = paper.reported_table(t)
        for label, vals in rep["rows"].items():
            for col in ("mmlu", "hellaswag"):
                a = acc["rows"][label][acc["columns"].index(col)]
                assert vals[rep["columns"].index(col)] == a, (t, label, col)


def test_fixture_gives_helm_the_long_answer_passage(tmp_path):
    """crfm-helm's own NaturalQAScenario reads the shipped fixture (raw NQ format) in both modes:
    open-book prompts carry the <p> long answer with its HTML stripped, closed-book only the
    question. Fixture file 00 holds FACTS[0:2]; row 1 (odd -> valid) is the Moon question."""
    if not HELM_PY.exists():  # make test builds it: a missing environment is a failure
        pytest.fail(f"HELM environment absent ({HELM_PY}); create it with "
                    "scripts/setup-helm-env.sh (make test does)")
    shutil.copytree(ROOT / "tests" / "fixtures" / "helm" / "scenarios" / "natural_qa" / "data",
                    tmp_path / "data")
    code = (
        "import json,sys\n"
        "from helm.benchmark.scenarios.natural_qa_scenario import NaturalQAScenario\n"
        "out = {}\n"
        "for mode in ('openbook_longans', 'closedbook'):\n"
        "    inst = NaturalQAScenario(mode).get_instances(sys.argv[1])\n"
        "    out[mode] = [[i.split, i.input.text, [r.output.text for r in i.references]]\n"
        "                 for i in inst]\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([str(HELM_PY), "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    ob, cb = got["openbook_longans"], got["closedbook"]
    assert len(ob) == len(cb) == 10 and [s for s, _, _ in ob[:2]] == ["train", "valid"]
    assert ob[1][1] == ("Passage: The Moon orbits the Earth about once a month. It has no air "
                        "to breathe.\n\nQuestion: What does the moon orbit?")
    assert ob[1][2] == ["the Earth"]
    assert cb[1][1] == "What does the moon orbit?"
