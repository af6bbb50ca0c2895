"""`verify` checks the whole frozen run (issue 17 item 4): the manifest's own fields, permissions,
symlinks, empty directories, every path without exemptions; a malformed manifest is reported."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from prefbias.report import freeze

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "report"))
from build import build  # noqa: E402


@pytest.fixture
def frozen(tmp_path, tiny_config, repo_root):
    R = build(tmp_path / "R", tiny_config)
    (R / "report.html").write_text("<html>report</html>")
    freeze.freeze(R, copy.deepcopy(tiny_config), repo=repo_root)
    assert freeze.verify(R) == []
    yield R
    freeze.make_writable(R)


@contextlib.contextmanager
def opened(d: Path):
    """Write access to one directory of the read-only tree, restored afterwards."""
    mode = d.stat().st_mode
    d.chmod(mode | stat.S_IWUSR)
    try:
        yield d
    finally:
        d.chmod(mode)


def _edit_manifest(R: Path, edit) -> None:
    m = R / "MANIFEST.json"
    data = json.loads(m.read_text())
    edit(data)
    mode = m.stat().st_mode
    m.chmod(mode | stat.S_IWUSR)
    m.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    m.chmod(mode)


@pytest.mark.parametrize(("field", "edit"), [
    ("git", lambda m: m["git"].update(commit="0" * 40)),
    ("config", lambda m: m["config"].update(run="paper")),
    ("packages", lambda m: m["packages"].update(torch="9.9.9")),
    ("hardware", lambda m: m["hardware"].update(cpu_count=1024)),
    ("provenance", lambda m: m["provenance"]["models"].clear()),
])
def test_edited_manifest_field_is_named(frozen, field, edit):
    _edit_manifest(frozen, edit)
    assert freeze.verify(frozen) == [f"changed: MANIFEST.json field '{field}'"]


def test_edited_file_entry_and_digest_are_caught(frozen):
    def forge(m):  # the tamperer updates the file's hash in the manifest as well
        (frozen / "CITATION.cff").chmod(0o644)
        (frozen / "CITATION.cff").write_text("forged\n")
        (frozen / "CITATION.cff").chmod(0o444)
        m["files"]["CITATION.cff"] = freeze.file_entry(frozen / "CITATION.cff")
    _edit_manifest(frozen, forge)
    assert freeze.verify(frozen) == ["changed: MANIFEST.json field 'files'"]


@pytest.mark.parametrize("mode", [0o777, 0o644, 0o466])
def test_writable_file_is_reported(frozen, mode):
    f = frozen / "eval" / "helm" / "accuracy.csv"
    f.chmod(mode)
    assert freeze.verify(frozen) == [f"writable: eval/helm/accuracy.csv (mode {mode:o}; a "
                                     f"frozen run is read-only)"]


def test_writable_directory_is_reported(frozen):
    (frozen / "eval" / "helm").chmod(0o755)
    assert freeze.verify(frozen) == ["writable: eval/helm (mode 755; a frozen run is read-only)"]


def test_symlinks_are_reported(frozen):
    with opened(frozen / "eval") as d:
        os.symlink("/etc", d / "etc")
        os.symlink("helm/accuracy.csv", d / "acc.csv")
    assert freeze.verify(frozen) == ["symlink: eval/acc.csv -> helm/accuracy.csv",
                                     "symlink: eval/etc -> /etc"]


def test_empty_and_missing_directories_are_reported(frozen):
    with opened(frozen) as d:
        (d / "new").mkdir()
        (d / "new").chmod(0o555)
    assert freeze.verify(frozen) == ["extra: new/ (empty directory)"]
    with opened(frozen):
        (frozen / "new").rmdir()
    gone = frozen / "eval" / "reward"
    freeze.make_writable(frozen / "eval")
    for p in gone.iterdir():
        p.unlink()
    gone.rmdir()
    freeze.make_readonly(frozen)
    problems = freeze.verify(frozen)
    assert problems[0] == "missing: eval/reward/"
    assert len(problems) > 1 and all(p.startswith("missing: eval/reward/") for p in problems)


@pytest.mark.parametrize("rel", ["logs/freeze/all.log", "benchmarks/freeze/all.tsv",
                                 "eval/helm/.snakemake_timestamp", ".snakemake/metadata/x"])
def test_no_path_is_exempt(frozen, rel):
    freeze.make_writable(frozen)
    (frozen / rel).parent.mkdir(parents=True, exist_ok=True)
    (frozen / rel).write_text("x")
    freeze.make_readonly(frozen)
    assert f"extra: {rel}" in freeze.verify(frozen)


def test_file_present_at_freeze_in_former_exempt_dir_is_covered(tmp_path, tiny_config):
    R = build(tmp_path / "R", tiny_config)
    (R / "logs" / "freeze").mkdir(parents=True)
    (R / "logs" / "freeze" / "all.log").write_text("log\n")
    m = freeze.freeze(R, tiny_config, readonly=False)
    assert "logs/freeze/all.log" in m["files"] and "logs/freeze" in m["dirs"]
    (R / "logs" / "freeze" / "all.log").write_text("edited\n")
    assert freeze.verify(R) == ["changed: logs/freeze/all.log"]


@pytest.mark.parametrize(("content", "expect"), [
    (b"{not json", "not valid UTF-8 JSON"),
    (b'{"files": "\xff\xfe"}', "not valid UTF-8 JSON"),
    (b"[1, 2]", "a JSON object expected, got list"),
    (b'{"manifest_version": 2, "files": [1], "dirs": [], "digest": "x", "field_digests": {},'
     b' "readonly": true}', "field 'files' missing or not dict"),
    (b'{"manifest_version": 2, "files": {"a.csv": "x"}, "dirs": [], "digest": "x",'
     b' "field_digests": {}, "readonly": true}', "files['a.csv'] is not"),
    (b'{"manifest_version": 1, "files": {}}', "manifest_version 1 is not 2"),
])
def test_malformed_manifest_is_reported(frozen, content, expect, capsys):
    m = frozen / "MANIFEST.json"
    m.chmod(0o644)
    m.write_bytes(content)
    m.chmod(0o444)
    problems = freeze.verify(frozen)
    assert problems and all(p.startswith("malformed: MANIFEST.json (") for p in problems)
    assert any(expect in p for p in problems), problems
    from prefbias.commands.report import run_verify

    class A:
        results = str(frozen)

    assert run_verify(A()) == 1
    assert expect in capsys.readouterr().out


def test_freeze_refuses_symlinks(tmp_path, tiny_config):
    R = build(tmp_path / "R", tiny_config)
    os.symlink("/etc", R / "eval" / "etc")
    with pytest.raises(freeze.FreezeError, match="eval/etc"):
        freeze.freeze(R, tiny_config, readonly=False)
    assert not (R / "MANIFEST.json").exists()


def test_manifest_records_the_cluster_settings_expanded(monkeypatch):
    """The manifest's config is the resolved one: ${VAR:-default} in `cluster` expanded from
    the environment of the run (issue 16 item 7); secrets stay redacted."""
    from prefbias.report.freeze import redact, resolved_config

    monkeypatch.setenv("PREFBIAS_SLURM_ACCOUNT", "proj42")
    monkeypatch.delenv("PREFBIAS_GPU_PARTITION", raising=False)
    config = {"run": "x", "judge": {"prompt": "costs ${PRICE}"},
              "cluster": {"account": "${PREFBIAS_SLURM_ACCOUNT:-}",
                          "partitions": {"gpu": "${PREFBIAS_GPU_PARTITION:-h100}"}}}
    out = resolved_config(config)
    assert out["cluster"] == {"account": "proj42", "partitions": {"gpu": "h100"}}
    assert out["judge"]["prompt"] == "costs ${PRICE}"  # only the cluster section takes variables
    assert redact({"api_key": "sk-abcdefgh123"}) == {"api_key": "<redacted>"}


@pytest.mark.parametrize("name", ["x\nR: intact", "x\rintact", "a\u202eevil", "back\\slash",
                                  '"quoted'])
def test_file_names_cannot_forge_verify_lines(tmp_path, tiny_config, capsys, name):
    """issue 23 item 10: a file name with a newline printed a forged line; names are escaped."""
    from prefbias.commands.report import run_verify

    R = build(tmp_path / "R", tiny_config)
    freeze.freeze(R, copy.deepcopy(tiny_config), readonly=False)
    (R / name).write_text("x")
    (R / "eval" / f"sub{name}").mkdir()
    problems = freeze.verify(R)
    assert len(problems) == 2
    for p in problems:
        assert "\n" not in p and "\r" not in p and "\u202e" not in p
    assert problems[1] == f"extra: {freeze.show_path(name)}" and freeze.show_path(name) != name

    class A:
        results = str(R)

    assert run_verify(A()) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    # the two problems, then why (files written after the freeze, names escaped) and the fix
    assert len(lines) == 4 and all(ln.startswith("extra: ") for ln in lines[:2]), lines
    assert lines[2].startswith("cause: ") and lines[3].startswith("fix: "), lines
    assert not any(ln.endswith(": intact") for ln in lines)
def test_files_written_after_the_freeze_name_cause_and_fix(frozen, capsys):
    """One target regenerated on a frozen run: its log changes (its outputs may come out
    byte-identical, so Snakemake has nothing to do). verify names the files, why, and the command
    that freezes the run again (issue 21)."""
    from prefbias.commands.report import run_verify

    log = next(p for p in sorted(frozen.rglob("*")) if p.is_file() and p.name != "MANIFEST.json"
               and "MANIFEST" not in p.name)
    rel = str(log.relative_to(frozen))
    freeze.make_writable(frozen)
    log.write_text(log.read_text() + "rerun\n")
    later = (frozen / "MANIFEST.json").stat().st_mtime_ns + 10**9
    os.utime(log, ns=(later, later))
    assert freeze.written_after_freeze(frozen) == [rel]

    class A:
        results = str(frozen)

    assert run_verify(A()) == 1
    out = capsys.readouterr().out
    assert f"changed: {rel}" in out
    assert f"cause: 1 file(s) were written after the freeze ({rel})" in out
    assert f"fix: freeze again: snakemake --forcerun freeze -- {frozen}/MANIFEST.json" in out
    # a file edited in place, without a later time stamp, gets no such explanation
    os.utime(log, ns=(later - 2 * 10**9, later - 2 * 10**9))
    assert freeze.explain(frozen, freeze.verify(frozen)) == []
