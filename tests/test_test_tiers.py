"""The two test tiers (issue 21): `make test` runs every test, as CI does; `make test-fast`, the
everyday loop, leaves out the tests marked slow and the Slurm tests. Both print the slowest."""

from __future__ import annotations

import re
import types
from pathlib import Path

from tests.conftest import unmarked_slow_tests

ROOT = Path(__file__).resolve().parents[1]


def _recipe(target: str) -> list[str]:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, f"no {target} target in the Makefile"
    return [line.strip() for line in m.group(1).splitlines()]


def _pytest_marks(recipe: list[str]) -> list[str | None]:
    calls = [line for line in recipe if "/pytest" in line]
    assert calls and all("$(DURATIONS)" in c for c in calls), recipe
    marks = [re.search(r'-m (?:"([^"]+)"|(\w+))', c) for c in calls]
    return [m and (m[1] or m[2]) for m in marks]


def test_make_test_runs_every_test():
    # "not slurm" then "slurm": every test, slow ones included
    assert _pytest_marks(_recipe("test")) == ["not slurm", "slurm"]
    assert re.search(r"^DURATIONS := --durations=15$", (ROOT / "Makefile").read_text(), re.M)


def test_make_test_fast_leaves_out_slow_and_slurm():
    assert _pytest_marks(_recipe("test-fast")) == ["not slow and not slurm"]


def _item(nodeid, fixtures=(), marks=()):
    return types.SimpleNamespace(
        nodeid=nodeid, fixturenames=list(fixtures),
        get_closest_marker=lambda name: (name if name in marks else None))


def test_real_model_helm_and_demo_tests_must_be_marked_slow():
    items = [_item("a", ["smol_dir"]), _item("b", ["smol_dir"], ["slow"]),
             _item("c", marks=["helm"]), _item("d", ["demo", "tmp_path"]),
             _item("e", ["tmp_path", "synthetic_model"])]
    assert unmarked_slow_tests(items) == ["a", "c", "d"]

