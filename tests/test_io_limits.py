"""issue 23 item 7: the JSONL reader caps a row's size (a 30 MB row took 7 GB of memory) and
turns nesting too deep to parse into a DataError naming file and line, not a traceback."""

from __future__ import annotations

import pytest

from prefbias.io import (
    DEFAULT_MAX_ROW_BYTES,
    MAX_ROW_BYTES_ENV,
    DataError,
    iter_jsonl,
    read_json,
    read_jsonl,
)


def test_default_cap_is_8_mib_and_a_longer_row_is_named(tmp_path):
    assert DEFAULT_MAX_ROW_BYTES == 8 * 1024 * 1024
    p = tmp_path / "big.jsonl"
    with open(p, "w") as fh:
        fh.write('{"id": 1}\n')
        fh.write('{"id": 2, "text": "' + "x" * (9 * 1024 * 1024) + '"}\n')
        fh.write('{"id": 3}\n')
    with pytest.raises(DataError) as err:
        read_jsonl(p)
    msg = str(err.value)
    assert str(p) in msg and "line 2" in msg and f"longer than {DEFAULT_MAX_ROW_BYTES} bytes" in msg
    assert MAX_ROW_BYTES_ENV in msg


def test_cap_is_configurable_and_exact(tmp_path, monkeypatch):
    p = tmp_path / "rows.jsonl"
    row = '{"id": "abcdefgh"}'  # 18 bytes + newline
    p.write_text(row + "\n" + row + "\n")
    monkeypatch.setenv(MAX_ROW_BYTES_ENV, str(len(row) + 1))
    assert len(read_jsonl(p)) == 2  # a line of exactly the limit (with its newline) passes
    monkeypatch.setenv(MAX_ROW_BYTES_ENV, str(len(row) - 1))
    with pytest.raises(DataError, match="line 1: the line is longer than 17 bytes"):
        read_jsonl(p)
    assert len(list(iter_jsonl(p, max_bytes=1000))) == 2
    monkeypatch.setenv(MAX_ROW_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_ROW_BYTES_ENV):
        read_jsonl(p)


def test_last_line_without_newline_at_the_limit(tmp_path, monkeypatch):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"id": 1}\n{"id": 22}')  # 10 bytes, no newline
    monkeypatch.setenv(MAX_ROW_BYTES_ENV, "10")
    assert [r["id"] for r in read_jsonl(p)] == [1, 22]
    p.write_text('{"id": 1}\n{"id": 333}')  # 11 bytes
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(p)


@pytest.mark.parametrize("depth", [100_000])
def test_deep_nesting_is_a_data_error(tmp_path, depth):
    p = tmp_path / "deep.jsonl"
    p.write_text('{"id": 1}\n{"id": 2, "x": ' + "[" * depth + "]" * depth + "}\n")
    with pytest.raises(DataError, match=r"line 2: the JSON value is nested too deeply"):
        read_jsonl(p)
    j = tmp_path / "deep.json"
    j.write_text("[" * depth + "]" * depth)
    with pytest.raises(DataError, match="nested too deeply"):
        read_json(j)
