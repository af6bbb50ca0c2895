"""fetch-dataset: hf (local dataset directory, offline), url (local http.server), local copy."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading

import pytest

from prefbias.data.fetch import FetchError, fetch
from prefbias.io import DataError

ROWS = [{"messages": [{"role": "user", "content": f"q{i}"},
                      {"role": "assistant", "content": f"a{i}"}], "source": "s"}
        for i in range(3)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_download_with_sha(server, tmp_path):
    root, base = server
    text = _jsonl(ROWS)
    (root / "d.jsonl").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    spec = {"source": "url", "files": {"train": {"url": f"{base}/d.jsonl", "sha256": sha}}}
    out = tmp_path / "raw" / "x"
    digests = fetch(spec, "x", out, retries=1, timeout=5)
    assert (out / "train.jsonl").read_text() == text and digests == {"train": sha}
    assert sorted(p.name for p in out.iterdir()) == ["train.jsonl"]


def test_url_sha_mismatch_names_both_and_leaves_nothing(server, tmp_path):
    root, base = server
    (root / "d.jsonl").write_text(_jsonl(ROWS))
    spec = {"source": "url", "files": {"train": {"url": f"{base}/d.jsonl", "sha256": "0" * 64}}}
    out = tmp_path / "raw" / "x"
    with pytest.raises(FetchError) as e:
        fetch(spec, "x", out, retries=1, timeout=5)
    assert "expected " + "0" * 64 in str(e.value)
    assert hashlib.sha256(_jsonl(ROWS).encode()).hexdigest() in str(e.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_url_404_fails_after_no_retry(server, tmp_path):
    _, base = server
    spec = {"source": "url", "files": {"test": {"url": f"{base}/missing.jsonl"}}}
    with pytest.raises(FetchError, match="could not download"):
        fetch(spec, "x", tmp_path / "o", retries=3, timeout=5, backoff=0)
    assert not (tmp_path / "o" / "test.jsonl").exists()


def test_partial_failure_leaves_no_split(server, tmp_path):
    root, base = server
    (root / "a.jsonl").write_text(_jsonl(ROWS))
    spec = {"source": "url", "files": {"train": {"url": f"{base}/a.jsonl"},
                                       "test": {"url": f"{base}/nope.jsonl"}}}
    out = tmp_path / "o"
    with pytest.raises(FetchError):
        fetch(spec, "x", out, retries=1, timeout=5)
    assert list(out.iterdir()) == []


def test_local_copy_and_sha(tmp_path):
    src = tmp_path / "src.jsonl"
    src.write_text(_jsonl(ROWS))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    # tmp_path is outside the repository: a file there is copied only with its sha256 pinned
    # (issue 23 item 10; tests/test_config_guards.py)
    spec = {"source": "local", "files": {"train": {"path": str(src), "sha256": sha},
                                         "test": {"path": str(src), "sha256": sha}}}
    fetch(spec, "x", tmp_path / "o")
    assert (tmp_path / "o" / "train.jsonl").read_bytes() == src.read_bytes()
    assert (tmp_path / "o" / "test.jsonl").exists()
    fetch(spec, "x", tmp_path / "only", splits=["test"])
    assert [p.name for p in (tmp_path / "only").iterdir()] == ["test.jsonl"]
    bad = {"source": "local", "files": {"train": {"path": str(src), "sha256": "1" * 64}}}
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch(bad, "x", tmp_path / "o2")
    with pytest.raises(DataError, match="no split 'dev'"):
        fetch(spec, "x", tmp_path / "o3", splits=["dev"])
    missing = {"source": "local", "files": {"train": {"path": str(tmp_path / "nope.jsonl"),
                                                      "sha256": sha}}}
    with pytest.raises(DataError, match="does not exist"):
        fetch(missing, "x", tmp_path / "o4")


def test_hf_from_local_dataset_directory(tmp_path):
    repo = tmp_path / "hub" / "prefs"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "train_prefs-00000-of-00001.jsonl").write_text(_jsonl(ROWS))
    (repo / "data" / "test_prefs-00000-of-00001.jsonl").write_text(_jsonl(ROWS[:1]))
    spec = {"source": "hf", "repo": str(repo), "revision": "main", "subset": None,
            "splits": {"train": "train_prefs", "test": "test_prefs"}}
    out = tmp_path / "raw" / "uf"
    fetch(spec, "uf", out)
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert train == ROWS
    assert len((out / "test.jsonl").read_text().splitlines()) == 1
