"""The import graph of ``src/prefbias`` has no circles and no import running up the layers.

Every ``import`` / ``from ... import`` is read from the source (module level and inside
functions alike: a deferred import is still a dependency), resolved to a module of the package,
plus the implicit import of each parent package (``from prefbias.generation.base import X`` runs
``prefbias/generation/__init__.py`` first). Nothing is imported: the scan is static.

Layers, lowest first; a module may import its own layer and the ones below, never above:

0. basics: ``io``, ``held_secrets``, ``cache``, ``containers`` (the package root too)
1. ``plan`` (import-light: every Slurm job re-parses the Snakefile), ``api_client``
2. ``data``, ``models``
3. ``config``, ``config_show``, ``jobspec``, ``hpc`` (may read the plan and the config, never
   the evaluation code)
4. ``generation``, ``train``
5. ``evaluation``
6. ``report``
7. ``cli``, ``commands``, ``__main__``
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("prefbias", "prefbias.io", "prefbias.held_secrets", "prefbias.cache", "prefbias.containers"),
    ("prefbias.plan", "prefbias.api_client"),
    ("prefbias.data", "prefbias.models"),
    ("prefbias.config", "prefbias.config_show", "prefbias.jobspec", "prefbias.rule_table",
     "prefbias.hpc"),
    ("prefbias.generation", "prefbias.train"),
    ("prefbias.evaluation",),
    ("prefbias.report",),
    ("prefbias.cli", "prefbias.commands", "prefbias.__main__"),
)

def modules(root: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in sorted((root / "prefbias").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = SRC) -> nx.DiGraph:
    """module -> every package module it imports (at any depth of its code)."""
    known = modules(root)
    graph = nx.DiGraph()
    for mod, path in known.items():
        graph.add_node(mod)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets.add(source)
                # `from pkg import submodule` imports the submodule
                targets.update(f"{source}.{a.name}" for a in node.names
                               if f"{source}.{a.name}" in known)
        for name in targets:
            if not (name == "prefbias" or name.startswith("prefbias.")):
                continue
            target = _resolve(name, known)
            # importing a module runs its parent packages' __init__ first
            while target:
                if target != mod:
                    graph.add_edge(mod, target)
                target = target.rpartition(".")[0]
    return graph


def layer(mod: str) -> int:
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            # the package root is itself only: a new top-level module must be given a layer
            inside = mod.startswith(name + ".") and name != "prefbias"
            if (mod == name or inside) and len(name) > best:
                best, found = len(name), i
    if found is None:
        raise AssertionError(f"module {mod} is in no layer of tests/test_layers.py: add it")
    return found


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Every strongly connected set of modules (a circle of imports), sorted."""
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def upward(graph: nx.DiGraph) -> list[tuple[str, str]]:
    return sorted((a, b) for a, b in graph.edges if layer(b) > layer(a))


def test_every_module_has_a_layer():
    for mod in import_graph():
        layer(mod)


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(
        " -> ".join([*c, c[0]]) for c in sorted(nx.simple_cycles(graph)))


def test_no_upward_imports():
    found = upward(import_graph())
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)})" for a, b in found)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "prefbias" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_scan_finds_deferred_and_relative_imports(tmp_path):
    """The checks can fail: a circle through a function-level relative import, and an upward
    import hidden in a function, are both found."""
    root = _write(tmp_path, {
        "__init__.py": "", "io.py": "def f():\n    from prefbias.report import build\n",
        "generation/__init__.py": "",
        "generation/base.py": "def make():\n    from .hf_backend import B\n",
        "generation/hf_backend.py": "from prefbias.generation.base import make\n",
        "report/__init__.py": "", "report/build.py": "import prefbias.io\n",
    })
    graph = import_graph(root)
    assert cycles(graph) == [["prefbias.generation.base", "prefbias.generation.hf_backend"],
                             ["prefbias.io", "prefbias.report.build"]]
    assert ("prefbias.io", "prefbias.report.build") in upward(graph)
    assert ("prefbias.io", "prefbias.report") in upward(graph)  # the parent package runs too


@pytest.mark.parametrize("mod", ["prefbias.plan", "prefbias.hpc.resources"])
def test_import_light_modules_stay_low(mod):
    """What every Slurm job's Snakefile parse imports reaches neither evaluation nor report."""
    reach = nx.descendants(import_graph(), mod)
    heavy = sorted(m for m in reach if layer(m) >= layer("prefbias.generation"))
    assert not heavy, f"{mod} reaches {heavy}"


#: libraries a job's parse of the Snakefile must not load (seconds each, on every Slurm job)
HEAVY = ("torch", "transformers", "pandas", "numpy", "datasets", "matplotlib", "accelerate",
         "peft", "openai", "vllm", "httpx", "scipy")


def test_the_workflow_parses_without_heavy_libraries():
    """The package modules the Snakefile and rules/*.smk import at parse time (unindented
    imports; a handler's indented import runs only when it is called) load none of
    :data:`HEAVY`: every Slurm job re-parses the workflow."""
    mods = set()
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for line in path.read_text().splitlines():
            m = re.match(r"(?:from (prefbias[\w.]*) import|import (prefbias[\w.]*))", line)
            if m:
                mods.add(m.group(1) or m.group(2))
    assert "prefbias.jobspec" in mods and "prefbias.config" in mods  # the scan reads them
    code = "".join(f"import {m}\n" for m in sorted(mods)) + (
        "import sys\nprint(' '.join(sorted({k.split('.')[0] for k in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    assert not set(HEAVY) & set(loaded), sorted(set(HEAVY) & set(loaded))
