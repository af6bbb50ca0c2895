"""prefbias.io readers: non-UTF-8 bytes and empty inputs are DataErrors naming file, line and what
is wrong (issue 17 item 6); stale temporaries of killed atomic writes are found and removed."""

from __future__ import annotations

import json
import logging

import pytest

from prefbias.io import (
    DataError,
    atomic_path,
    iter_jsonl,
    read_json,
    read_jsonl,
    read_text,
    remove_stale_temporaries,
    write_jsonl,
)
from prefbias.train import synthetic
from prefbias.train.batching import read_pairs
from tests.support.sections import job_section

LATIN1 = '{"id": "p1", "prompt": [{"role": "user", "content": "café"}], "chosen": "a", ' \
         '"rejected": "b"}'


def _prefs_with_latin1_line(path, bad_line: int = 2):
    rows = [json.dumps(r) for r in synthetic.pref_rows(3)]
    data = [r.encode("utf-8") for r in rows]
    data.insert(bad_line - 1, LATIN1.encode("latin-1"))  # é as the single byte 0xe9
    path.write_bytes(b"\n".join(data) + b"\n")
    return LATIN1.index("é") + 1  # 1-based column of the bad byte


def test_jsonl_non_utf8_names_file_line_column_and_bytes(tmp_path):
    p = tmp_path / "prefs.jsonl"
    col = _prefs_with_latin1_line(p, bad_line=2)
    with pytest.raises(DataError) as ei:
        list(iter_jsonl(p))
    e = ei.value
    assert e.path == str(p) and e.line == 2
    assert f"{p}, line 2: not valid UTF-8 text: byte(s) e9 at column {col}" in str(e)
    assert not isinstance(e, UnicodeDecodeError)
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        read_pairs(p)  # a real reader of training inputs


def test_jsonl_rows_before_the_bad_line_are_read(tmp_path):
    p = tmp_path / "prefs.jsonl"
    _prefs_with_latin1_line(p, bad_line=3)
    it = iter_jsonl(p)
    assert [next(it)[0], next(it)[0]] == [1, 2]
    with pytest.raises(DataError, match="line 3"):
        next(it)


def test_json_non_utf8_names_line(tmp_path):
    p = tmp_path / "summary.json"
    p.write_bytes(b'{\n "model": "sft-s0",\n "note": "\xff\xfe bad"\n}\n')
    with pytest.raises(DataError, match=r"summary\.json, line 3: not valid UTF-8 text: byte\(s\) "
                                        r"ff at column 11"):
        read_json(p)
    with pytest.raises(DataError, match="line 3"):
        read_text(p)


def test_truncated_multibyte_sequence(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes('{"a": "ok"}\n{"a": "€'.encode()[:-1])  # file cut inside a 3-byte character
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8 text: byte\(s\) e2 82"):
        read_jsonl(p)


def test_empty_input_where_rows_are_required(tmp_path):
    p = tmp_path / "set.jsonl"
    p.write_text("")
    assert read_jsonl(p) == []
    with pytest.raises(DataError, match=r"set\.jsonl: no rows"):
        read_jsonl(p, required=True)
    p.write_text("\n  \n\n")
    with pytest.raises(DataError, match="no rows"):
        read_jsonl(p, required=True)
    write_jsonl(p, [{"id": 1}])
    assert read_jsonl(p, required=True) == [{"id": 1}]


def test_cli_reports_non_utf8_input_as_bad_input(tmp_path, caplog, synthetic_model):
    from prefbias.cli import main

    model = synthetic_model()
    p = tmp_path / "train.jsonl"
    _prefs_with_latin1_line(p, bad_line=2)
    spec = {"batch_size": 2, "grad_accum": 1, "max_length": 64, "warmup_ratio": 0.0,
            "max_grad_norm": 1.0, "beta": 0.1, "optimizer": {"name": "adamw", "lr": 1e-3}}
    with caplog.at_level(logging.ERROR):
        rc = main(["train-orpo", "--model-id", "orpo-x-s0", "--init", str(model),
                   "--spec", json.dumps(job_section("orpo", {
                       **spec, "cutoff_len": 64, "effective_batch_size": 2, "lam": 0.1,
                       "lr": 1e-3, "epochs": 1, "lora": {"r": 2, "alpha": 4}})),
                   "--seed", "0", "--out", str(tmp_path / "m"), "--metrics", str(tmp_path / "x"),
                   "--summary", str(tmp_path / "s"), "--ckpt", str(tmp_path / "c"),
                   "--train", str(p)])
    assert rc == 2
    assert f"bad input: {p}, line 2: not valid UTF-8" in caplog.text
    assert not (tmp_path / "m").exists()


def test_remove_stale_temporaries(tmp_path):
    target = tmp_path / "models" / "sft-s0"

    class Killed(BaseException):
        pass

    with pytest.raises(Killed), atomic_path(target, is_dir=True) as tmp:
        (tmp / "weights").write_text("x")
        raise Killed  # atomic_path cleans up after an exception ...
    assert not list(target.parent.iterdir())
    stale = target.parent / ".sft-s0.tmp-abc123"  # ... but SIGKILL skips that
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 64)
    other = target.parent / ".sft-s01.tmp-abc123"  # another output's temporary: kept
    other.mkdir()
    (target.parent / ".sft-s0.tmp-f").write_text("partial")
    assert sorted(p.name for p in remove_stale_temporaries(target)) == [".sft-s0.tmp-abc123",
                                                                       ".sft-s0.tmp-f"]
    assert [p.name for p in target.parent.iterdir()] == [".sft-s01.tmp-abc123"]
    assert remove_stale_temporaries(tmp_path / "absent" / "x") == []
