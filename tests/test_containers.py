"""Container definitions and conda fallbacks (no apptainer binary here: checked statically).

Every containers/*.def parses with spython, starts from a digest-pinned base, copies its lock file
and installs exactly the locked versions; envs/*.yaml pin the same versions; every rule that runs
a command names an image that the config defines and a .def builds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from prefbias.hpc import needs
from prefbias.rule_table import BACKEND_SECTION, RULES

ROOT = Path(__file__).resolve().parents[1]
# image name -> the lock file its .def copies to /opt/prefbias/constraints.txt
LOCKS = {"train": "envs/constraints.txt", "vllm": "envs/vllm-constraints.txt",
         "helm": "envs/helm-constraints.txt"}
CONDA = {"train": "envs/train.yaml", "vllm": "envs/vllm.yaml"}
PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[norm(name.split("[")[0])] = ver.strip()
    return out


def parse_def(name: str):
    from spython.main.parse.parsers import SingularityParser

    parsed = SingularityParser(str(ROOT / "containers" / f"{name}.def")).recipe
    return parsed if not isinstance(parsed, dict) else next(iter(parsed.values()))


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_def_parses_and_pins_base_by_digest(name):
    recipe = parse_def(name)
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", recipe.fromHeader), \
        recipe.fromHeader
    text = (ROOT / "containers" / f"{name}.def").read_text()
    assert re.search(r"^Bootstrap:\s*docker", text, re.M)
    assert f"{LOCKS[name]} /opt/prefbias/constraints.txt" in text
    assert "PYTHONPATH" in text  # code from the working tree


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_def_installs_exactly_the_locked_versions(name):
    lock_path = ROOT / LOCKS[name]
    if not lock_path.exists():
        pytest.skip(f"{LOCKS[name]} not written yet")
    locked = lock(lock_path)
    post = parse_def(name).install  # %post lines
    text = "\n".join(post) if isinstance(post, list) else str(post)
    text = text.replace("\\\n", " ")
    installs = [ln for ln in re.split(r"\n|&&", text) if re.search(r"\bpip install\b", ln)]
    assert installs
    for line in installs:
        # constrained by the lock, or the lock itself installed verbatim
        assert ("-c /opt/prefbias/constraints.txt" in line
                or ("--no-deps" in line and "-r /opt/prefbias/constraints.txt" in line)), line
    pins = {norm(n): v for line in installs for n, v in PIN.findall(line)}
    assert pins
    wrong = {n: (v, locked.get(n)) for n, v in pins.items() if locked.get(n) != v}
    assert not wrong, f"{name}.def pins differ from {LOCKS[name]}: {wrong}"


@pytest.mark.parametrize("name", sorted(CONDA))
def test_conda_env_pins_match_lock_and_def(name):
    env = yaml.safe_load((ROOT / CONDA[name]).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for item in pip:
        m = PIN.fullmatch(item.strip())
        assert m, f"{CONDA[name]}: '{item}' is not an exact pin"
        pins[norm(m.group(1))] = m.group(2)
    locked = lock(ROOT / LOCKS[name])
    assert {n: v for n, v in pins.items() if locked.get(n) != v} == {}
    assert "python=3.11" in env["dependencies"]


def test_train_lock_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    locked = lock(ROOT / "envs" / "constraints.txt")
    for n, v in PIN.findall(text):
        assert locked.get(norm(n)) == v, (n, v, locked.get(norm(n)))


def test_every_rule_that_runs_a_command_has_an_image(paper_config):
    """Every rule of the table that runs a command in a container (the table holds exactly the
    workflow's rules and every job runs in the image it gives: tests/test_rule_table.py) names
    an image the config defines and a containers/<name>.def builds."""
    unknown = [(rule, img) for rule, e in RULES.items() if e.container
               for img in [needs.image_name(paper_config, rule)]
               if img not in paper_config.get("containers", {})
               or not (ROOT / "containers" / f"{img}.def").exists()]
    assert not unknown, f"rules naming an image with no config entry / .def: {unknown}"


def test_config_containers_are_paths_or_digest_uris(paper_config):
    for name, image in paper_config["containers"].items():
        assert (ROOT / "containers" / f"{name}.def").exists()
        if "://" in image:
            assert "@sha256:" in image, image
        else:
            assert image.endswith(".sif"), image


def def_installs(name: str) -> set[str]:
    """Distributions containers/<name>.def pip-installs: the packages named on its `pip install`
    lines, plus every entry of its lock when the lock itself is installed (`-r`)."""
    post = parse_def(name).install
    text = ("\n".join(post) if isinstance(post, list) else str(post)).replace("\\\n", " ")
    out: set[str] = set()
    for line in re.split(r"\n|&&", text):
        if not re.search(r"\bpip install\b", line):
            continue
        if "-r /opt/prefbias/constraints.txt" in line:
            out |= set(lock(ROOT / LOCKS[name]))
        out |= {norm(n) for n, _ in PIN.findall(line)}
    return out


def _schema_backends(section: str, rule: str) -> list[str]:
    schema = yaml.safe_load((ROOT / "src/prefbias/schemas/config.schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    return props["backend"]["enum"]


def _with_backend(config: dict, rule: str, backend: str) -> dict:
    import copy

    cfg = copy.deepcopy(config)
    section = BACKEND_SECTION[rule]
    cfg[section]["backend"] = backend
    return cfg


def _rule_backend_cases():
    cases = []
    for rule in sorted(r for r, e in RULES.items() if e.container):
        if rule in BACKEND_SECTION:
            for b in _schema_backends(BACKEND_SECTION[rule], rule):
                cases.append((rule, b))
        else:
            cases.append((rule, None))
    return cases


@pytest.mark.parametrize(("rule", "backend"), _rule_backend_cases())
@pytest.mark.parametrize("grader", ["match", "llm"])
def test_chosen_image_installs_the_rules_backend(paper_config, rule, backend, grader):
    """For every rule and every backend the schema allows, the .def of the image the rule gets
    installs that backend's package (vllm -> vllm, hf -> torch + transformers, openai ->
    openai; HELM rules -> crfm-helm; the llm sycophancy grader -> openai)."""
    cfg = _with_backend(paper_config, rule, backend) if backend else paper_config
    cfg = {**cfg, "sycophancy": {**cfg["sycophancy"], "grader": {"kind": grader, "model": "g"}}}
    name = needs.image_name(cfg, rule)
    assert (ROOT / "containers" / f"{name}.def").exists()
    assert name in cfg["containers"]
    want = {norm(p) for p in needs.packages(cfg, rule)}
    if backend:
        assert want >= {norm(p) for p in needs.BACKEND_PACKAGES[backend]}
    missing = want - def_installs(name)
    assert not missing, f"{rule} (backend {backend}) runs in containers/{name}.def, which " \
        f"does not install {sorted(missing)}"


def test_paper_sycophancy_and_vllm_rules_use_the_vllm_image(paper_config):
    """The paper's sycophancy tasks generate with vLLM: they must run in vllm.sif, which the
    train image (no vllm) is not."""
    assert paper_config["sycophancy"]["backend"] == "vllm"
    def image(rule):
        return needs.image_name(paper_config, rule, model="gemma-7b-it")

    for rule in ("sycophancy_answer", "sycophancy_ays", "generate", "style_shard"):
        assert image(rule) == "vllm", rule
    assert "vllm" not in def_installs("train")
    assert image("helm_run") == "helm" and image("train_sft") == "train"
    assert image("judge") == "train"  # openai client, no GPU stack needed beyond train
