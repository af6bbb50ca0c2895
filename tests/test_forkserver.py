"""prefbias.forkserver: jobs forked from a warm server behave like fresh processes.

Real servers and real client processes (no mocks); the target is a small module so a server
starts in about a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefbias import forkserver

ROOT = Path(__file__).resolve().parents[1]

TARGET = textwrap.dedent('''
    import os, sys, time

    def main():
        cmd = sys.argv[1]
        if cmd == "echo":
            from prefbias import forkserver
            print("cwd", os.getcwd())
            print("var", os.environ.get("JOBVAR"))
            print("argv", sys.argv[2:])
            print("child", forkserver.in_child())
            print("to stderr", file=sys.stderr)
            return 0
        if cmd == "exit":
            return int(sys.argv[2])
        if cmd == "raise":
            raise ValueError("boom in the child")
        if cmd == "sleep":
            with open(sys.argv[2], "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(120)
            return 0
        raise SystemExit(f"unknown {cmd}")
''')


@pytest.fixture
def fs(tmp_path, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "fs_target.py").write_text(TARGET)
    sock_dir = tmp_path / "fs"
    monkeypatch.setenv(forkserver.ENV_DIR, str(sock_dir))
    monkeypatch.delenv(forkserver.ENV_OWNER, raising=False)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(mod)]))
    yield sock_dir, env
    forkserver.stop_servers(sock_dir)


def run(env, argv, tmp_path, **kw):
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    notes = []
    with open(out, "w") as o, open(err, "w") as e:
        rc = forkserver.run_via_server(
            "t", python=sys.executable, target="fs_target:main", argv=["fs_target", *argv],
            preload=["fs_target"], env=kw.pop("req_env", env), stdio=(0, o.fileno(), e.fileno()),
            on_fallback=notes.append, **kw)
    return rc, out.read_text(), err.read_text(), notes


def test_child_gets_cwd_env_argv_and_stdio(fs, tmp_path):
    _, env = fs
    workdir = tmp_path / "job"
    workdir.mkdir()
    env = dict(env, JOBVAR="per-job value", OMP_NUM_THREADS="3")
    rc, out, err, notes = run(env, ["echo", "a b", "c"], tmp_path, cwd=str(workdir))
    assert (rc, notes) == (0, [])
    assert f"cwd {workdir}" in out
    assert "var per-job value" in out
    assert "argv ['a b', 'c']" in out
    assert "child True" in out
    assert err.strip() == "to stderr"


def test_exit_status_and_exceptions(fs, tmp_path):
    _, env = fs
    assert run(env, ["exit", "3"], tmp_path)[0] == 3
    rc, _, err, _ = run(env, ["raise"], tmp_path)
    assert rc == 1
    assert "ValueError: boom in the child" in err


def test_import_time_env_difference_gets_its_own_server(fs, tmp_path):
    sock_dir, env = fs
    assert run(env, ["exit", "0"], tmp_path)[0] == 0  # server started with env
    # thread counts are per job (Snakemake sets them): the same server
    assert run(env, ["exit", "0"], tmp_path, req_env=dict(env, OMP_NUM_THREADS="7"))[0] == 0
    assert len(list(sock_dir.glob("*.sock"))) == 1
    # a different import-time variable: its own server, never the first one
    assert run(env, ["exit", "0"], tmp_path, req_env=dict(env, HF_HOME="/elsewhere"))[0] == 0
    assert len(list(sock_dir.glob("*.sock"))) == 2


def test_server_refuses_a_request_with_another_import_time_env(fs, tmp_path):
    sock_dir, env = fs
    assert run(env, ["exit", "0"], tmp_path)[0] == 0
    (sock,) = sock_dir.glob("*.sock")
    conn = forkserver._connect(sock)
    with open(os.devnull, "rb") as null:
        forkserver._send_json(conn, {"target": "fs_target:main", "argv": ["fs_target", "exit"],
                                     "env": dict(env, HF_HOME="/elsewhere"), "cwd": "/",
                                     "umask": 0o022}, fds=[null.fileno()] * 3)
    reply, _ = forkserver._recv_json(conn)
    conn.close()
    assert reply["ok"] is False and "HF_HOME" in reply["reason"]


def test_unstartable_server_falls_back(fs, tmp_path):
    _, env = fs
    rc, _, _, notes = run(env, ["exit", "0"], tmp_path, req_env=dict(env, PYTHONPATH="/nowhere"))
    assert rc is None and "fork server (see" in notes[0]
    # the failure is remembered: the next job does not pay the start-up again
    rc, _, _, notes = run(env, ["exit", "0"], tmp_path, req_env=dict(env, PYTHONPATH="/nowhere"))
    assert rc is None


CLIENT = textwrap.dedent('''
    import sys
    from prefbias import forkserver
    rc = forkserver.run_via_server("t", python=sys.executable, target="fs_target:main",
                                   argv=["fs_target", "sleep", sys.argv[1]],
                                   preload=["fs_target"])
    sys.exit(rc if rc is not None else 99)
''')


def _wait_for(path: Path, timeout: float = 60) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} not written")


def _gone(pid: int, timeout: float = 30) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_cancelled_client_stops_its_child(fs, tmp_path, how):
    _, env = fs
    pidfile = tmp_path / "child.pid"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(pidfile)], env=env)
    child = _wait_for(pidfile)
    if how == "sigterm":  # forwarded to the child; the client reports it as 128 + 15
        client.send_signal(signal.SIGTERM)
        assert client.wait(timeout=60) == 128 + signal.SIGTERM
    else:  # the client cannot forward: the server sees it go and terminates the child
        client.kill()
        client.wait(timeout=60)
    assert _gone(child), f"child {child} still running after the client was {how}ed"


def test_warm_cli_runs_prefbias_jobs_through_the_server(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("model,a,b\nm1,1,2\nm2,2,1\nm3,3,3\n")
    sock_dir = tmp_path / "fs"
    prefbias = str(Path(sys.executable).with_name("prefbias"))
    env = dict(os.environ, PREFBIAS_FORKSERVER_PRELOAD="prefbias.cli:build_parser")
    env.pop(forkserver.ENV_DIR, None)
    plain = subprocess.run([prefbias, "winrate", str(table)], env=env, capture_output=True,
                           text=True, check=True)
    script = f"{prefbias} winrate {table} && {prefbias} winrate {tmp_path}/missing.csv; " \
             "echo rc=$?; exit 5"
    warm = subprocess.run([prefbias, "warm", "--dir", str(sock_dir), "--", "bash", "-c", script],
                          env=env, capture_output=True, text=True, timeout=600)
    assert warm.returncode == 5, warm.stderr  # the wrapped command's status
    assert warm.stdout.startswith(plain.stdout)  # same output as a fresh process
    assert "rc=2" in warm.stdout and "missing.csv" in warm.stderr
    log = next(sock_dir.glob("main-*.log")).read_text()
    assert log.count("child ") == 2, log
    assert not list(sock_dir.glob("*.sock")), "server still listening after the command ended"


def test_server_name_keys_interpreter_and_import_time_env():
    env = {"HF_HOME": "/a", "PATH": "/bin", "OMP_NUM_THREADS": "1"}
    name = forkserver.server_name("main", "/venv/bin/python", env)
    # per-job values (thread counts, PATH, TMPDIR) share the server
    assert forkserver.server_name("main", "/venv/bin/python",
                                  dict(env, OMP_NUM_THREADS="4", PATH="/x", TMPDIR="/t")) == name
    # a different import-time variable or interpreter gets its own server
    assert forkserver.server_name("main", "/venv/bin/python", dict(env, HF_HOME="/b")) != name
    assert forkserver.server_name("main", "/other/bin/python", env) != name
    assert name.startswith("main-")


def test_disabled_in_slurm_jobs_and_without_a_live_owner(monkeypatch, tmp_path):
    monkeypatch.setenv(forkserver.ENV_DIR, str(tmp_path))
    monkeypatch.setenv(forkserver.ENV_OWNER, str(os.getpid()))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(forkserver.ENV_DISABLE, raising=False)
    assert forkserver.enabled()
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # an exported warm env reaching a cluster job
    assert not forkserver.enabled()
    monkeypatch.delenv("SLURM_JOB_ID")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setenv(forkserver.ENV_OWNER, str(dead.pid))
    assert not forkserver.enabled()


def test_light_subcommands_run_in_process_without_torch(tmp_path):
    """Under ``prefbias warm``, the data subcommands at the start of the DAG run in the calling
    process (no server is started or waited for) and never import torch."""
    import json as _json
    import subprocess as sp

    src = tmp_path / "in.jsonl"
    src.write_text('{"messages": []}\n')
    sha = __import__("hashlib").sha256(src.read_bytes()).hexdigest()
    spec = {"source": "local", "files": {"train": {"path": str(src), "sha256": sha}}}
    sock_dir = tmp_path / "fs"
    code = ("import sys\n"
            "from prefbias.cli import main\n"
            "sys.argv = ['prefbias'] + sys.argv[1:]\n"
            "rc = main()\n"
            "print('RC', rc, 'torch' in sys.modules)\n")
    env = dict(os.environ, **{forkserver.ENV_DIR: str(sock_dir),
                              forkserver.ENV_OWNER: str(os.getpid())})
    env.pop(forkserver.ENV_DISABLE, None)
    env.pop("SLURM_JOB_ID", None)
    out = sp.run([sys.executable, "-c", code, "fetch-dataset", "--spec", _json.dumps(spec),
                  "--name", "x", "--outdir", str(tmp_path / "raw")], env=env,
                 capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RC 0 False" in out.stdout, (out.stdout, out.stderr[-2000:])
    assert (tmp_path / "raw" / "train.jsonl").read_text() == src.read_text()
    assert not sock_dir.exists() or not list(sock_dir.iterdir()), list(sock_dir.iterdir())


def test_heavy_subcommands_are_not_in_process():
    from prefbias.cli import build_parser

    parser = build_parser()
    light = {"fetch-dataset", "prefs", "saa", "sycophancy-sets", "eval-prompts", "style-gather",
             "verify", "unfreeze", "snakemake-report"}
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert bool(p.get_default("in_process")) == (name in light), name


def test_matplotlib_warmup_is_fork_safe_and_in_the_main_preload():
    """The figure warm-up renders a PNG and a PDF (loads both backends and the fonts) and starts
    no thread, so the server may fork after it."""
    import threading

    from prefbias import warmup

    assert "prefbias.warmup:warm_matplotlib" in warmup.MAIN
    before = threading.active_count()
    warmup.warm_matplotlib()
    assert threading.active_count() == before
    assert "matplotlib.backends.backend_pdf" in sys.modules
    assert "fontTools.subset" in sys.modules  # type-42 PDF embedding
