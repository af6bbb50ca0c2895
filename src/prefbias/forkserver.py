"""A warm fork server for local runs: pay the torch/transformers/HELM import cost once per DAG.

On a small machine most of a tiny-config job is Python importing torch and transformers (20-80 s
per process here); the work itself takes seconds. ``prefbias warm -- snakemake ...`` (what
``make demo`` runs) sets :data:`ENV_DIR`. Every ``prefbias`` job then asks a server that has
already imported the heavy modules to ``fork()`` a child that runs the command, instead of
importing them again. HELM's ``helm-run`` gets a second server in its own environment.

The child is the job, for every purpose but the process tree:

* it receives the client's stdin/stdout/stderr as file descriptors (``SCM_RIGHTS``), its
  working directory, umask, ``argv`` and environment, so ``log:`` redirections, relative paths
  and per-job variables behave exactly as in a fresh process;
* a signal sent to the client (Snakemake cancelling a job, Ctrl-C) is forwarded to the child's
  process group, and a client that dies outright (SIGKILL) makes the server kill the child, so
  a cancelled job never keeps writing;
* the client exits with the child's exit status (128 + N when it died of signal N).

Safety rules, each with a fall-back to an ordinary in-process run (same results, only slower):

* the server refuses a request whose *import-time* environment (``HF_*``, ``TRANSFORMERS_*``,
  ``PYTHONPATH``, ``NLTK_DATA``, ... see :data:`IMPORT_TIME_PREFIXES`) differs from its own,
  since modules it already imported read those variables once;
* it refuses a request for another target or interpreter than it was started for;
* the server only imports modules and never runs model code; it refuses to serve if a Python
  thread exists after preloading (native BLAS/OpenMP pools are fork-safe, as in any forked
  worker).

Servers import the package once, when the first job needs them: a code change made while a
run is in progress takes effect at the next run (or set ``PREFBIAS_NO_FORKSERVER=1``).

Not used on Slurm or by a bare ``snakemake`` call: each job then imports normally. Snakemake's
``benchmark:`` files stay right for wall time; their CPU and memory columns see only the
client, since the child is not its descendant.

Standard library only: it runs in the training and the HELM environment alike.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import fcntl
import hashlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ENV_DIR = "PREFBIAS_FORKSERVER_DIR"  # set by `prefbias warm`: where the sockets live
ENV_OWNER = "PREFBIAS_FORKSERVER_OWNER"  # pid of `prefbias warm`; servers exit when it is gone
ENV_DISABLE = "PREFBIAS_NO_FORKSERVER"  # set (to anything) to run every job in-process
START_TIMEOUT_S = 1800.0  # preloading HELM on a loaded 2-core machine takes minutes
IDLE_TIMEOUT_S = 3600.0
IMPORT_TIME_PREFIXES = (
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "DATASETS_", "SAFETENSORS_", "TORCH",
    "PYTORCH_", "CUDA_", "NVIDIA_", "MKL_", "KMP_", "OPENBLAS_", "PYTHON", "LD_", "NLTK_DATA",
    "MPL", "XDG_CACHE_HOME", "VIRTUAL_ENV", "ACCELERATE_", "PEFT_", "WANDB_", "TQDM_", "HELM_",
)
# Per-job values read at call time, not import time: Snakemake sets the thread counts per job
# (the child applies them with torch.set_num_threads).
CALL_TIME_KEYS = ("TOKENIZERS_PARALLELISM",)
CALL_TIME_SUFFIXES = ("_NUM_THREADS", "_MAXIMUM_THREADS")

_in_child = False  # True in a forked child: a nested `prefbias` main() must not call a server


def in_child() -> bool:
    return _in_child


def enabled() -> bool:
    """Under ``prefbias warm`` on the machine that runs it. Never in a Slurm job (an exported
    ``PREFBIAS_FORKSERVER_DIR`` names a directory on the submit host), nor once the owning
    ``prefbias warm`` is gone."""
    if not os.environ.get(ENV_DIR) or os.environ.get(ENV_DISABLE):
        return False
    if os.environ.get("SLURM_JOB_ID"):
        return False
    owner = os.environ.get(ENV_OWNER, "")
    return not owner.isdigit() or _alive(int(owner))


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    """The variables a module may have read when the server imported it."""
    return {k: v for k, v in env.items()
            if k.startswith(IMPORT_TIME_PREFIXES) and k not in CALL_TIME_KEYS
            and not k.endswith(CALL_TIME_SUFFIXES)}


def env_mismatch(server_env: dict[str, str], request_env: dict[str, str]) -> list[str]:
    a, b = import_time_env(server_env), import_time_env(request_env)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# ------------------------------------------------------------------------------------ wire
def _send_json(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = struct.pack("!I", len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, head: bytes = b"") -> bytes:
    buf = bytearray(head)
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        buf += chunk
    return bytes(buf)


def _recv_json(sock: socket.socket, with_fds: int = 0) -> tuple[Any, list[int]]:
    """One length-prefixed message; never reads past it (the next may follow at once)."""
    fds: list[int] = []
    if with_fds:  # ancillary data arrives with the message's first byte
        head, fds, _flags, _addr = socket.recv_fds(sock, 4, with_fds)
    else:
        head = sock.recv(4)
    if not head:
        raise ConnectionError("connection closed")
    (n,) = struct.unpack("!I", _recv_exact(sock, 4, head))
    return json.loads(_recv_exact(sock, n)), fds


# ---------------------------------------------------------------------------------- server
class Server:
    def __init__(self, sock_path: Path, target: str, preload: list[str], owner: int | None,
                 idle_timeout: float = IDLE_TIMEOUT_S):
        self.sock_path = Path(sock_path)
        self.target = target
        self.preload = preload
        self.owner = owner
        self.idle_timeout = idle_timeout
        self.env = dict(os.environ)
        self.children: dict[int, socket.socket] = {}  # child pid -> client connection
        self.killed: dict[int, float] = {}  # child pid -> when SIGTERM was sent
        self.sel = selectors.DefaultSelector()

    def log(self, msg: str) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} forkserver[{os.getpid()}]: {msg}\n")
        sys.stderr.flush()

    def load(self) -> None:
        t0 = time.monotonic()
        for item in self.preload:
            try:
                _call_or_import(item)
            except Exception as e:  # a missing optional module only costs speed
                self.log(f"preload {item} failed: {type(e).__name__}: {e}")
        _resolve(self.target)
        self.lock_memory()
        native, python = _native_threads(), threading.active_count()
        self.log(f"preloaded {len(sys.modules)} modules in {time.monotonic() - t0:.1f} s; "
                 f"threads: {python} Python, {native} native")
        if python > 1:
            # a Python thread may hold the import, logging or GIL-protected locks at fork
            # time and deadlock the child: refuse to serve (clients run jobs themselves).
            # Native pools (OpenBLAS, OpenMP) register pthread_atfork handlers and are the
            # same as in any forked worker (multiprocessing, DataLoader).
            raise RuntimeError(f"{python} Python threads after preloading; not fork-safe")

    def lock_memory(self) -> None:
        """Keep the preloaded libraries resident (``mlockall``): where the kernel reclaims page
        cache aggressively (this project's 2-core VM keeps < 1 GB), every forked job otherwise
        re-reads torch's 430 MB ``libtorch_cpu.so`` from disk page by page. Best effort: without
        the privilege (``RLIMIT_MEMLOCK``) the server runs unlocked;
        ``$PREFBIAS_FORKSERVER_MLOCK=0`` turns it off."""
        if os.environ.get("PREFBIAS_FORKSERVER_MLOCK", "1") == "0" or sys.platform != "linux":
            return
        import ctypes

        t0 = time.monotonic()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(1) != 0:  # MCL_CURRENT: what is mapped now (not later allocations)
            self.log(f"mlockall failed ({os.strerror(ctypes.get_errno())}); running unlocked")
            return
        self.log(f"locked {_rss_mb():.0f} MB resident in {time.monotonic() - t0:.1f} s")

    def serve(self) -> None:
        self.sock_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.sock_path.with_name(self.sock_path.name + f".{os.getpid()}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(tmp))
        listener.listen(64)
        os.replace(tmp, self.sock_path)  # appears only when ready to serve
        self.sel.register(listener, selectors.EVENT_READ, None)
        signal.signal(signal.SIGTERM, self._terminate)
        last_active = time.monotonic()
        self.log(f"serving {self.target} on {self.sock_path}")
        try:
            while True:
                for key, _ in self.sel.select(timeout=0.5):
                    if key.data is None:
                        conn, _ = listener.accept()
                        self._handle(conn, listener)
                    else:  # a client connection became readable: it went away
                        self._client_gone(key.data)
                self._reap()
                if self.children:
                    last_active = time.monotonic()
                elif time.monotonic() - last_active > self.idle_timeout:
                    self.log("idle timeout")
                    return
                if self.owner and not _alive(self.owner):
                    self.log(f"owner {self.owner} is gone")
                    return
        finally:
            with contextlib.suppress(OSError):
                self.sock_path.unlink()
            for pid in list(self.children):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGTERM)

    def _terminate(self, signum, frame):  # noqa: ARG002
        raise SystemExit(0)

    def _handle(self, conn: socket.socket, listener: socket.socket) -> None:
        try:
            req, fds = _recv_json(conn, with_fds=3)
        except ConnectionError:  # a readiness probe (ensure_server) connects and closes
            conn.close()
            return
        except (OSError, ValueError) as e:
            self.log(f"bad request: {e}")
            conn.close()
            return
        reason = None
        if _peer_pid(conn) in self.children:
            reason = "request from one of this server's own children (recursion)"
        elif req.get("target") != self.target:
            reason = f"server runs {self.target}, not {req.get('target')}"
        elif (diff := env_mismatch(self.env, req.get("env", {}))):
            reason = "import-time environment differs: " + ", ".join(diff)
        elif len(fds) != 3:
            reason = f"expected 3 file descriptors, got {len(fds)}"
        if reason:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                _send_json(conn, {"ok": False, "reason": reason})
            conn.close()
            self.log(f"refused: {reason}")
            return
        pid = os.fork()
        if pid == 0:  # child: never returns
            _child_main(req, fds, conn, listener, self.sel)
        for fd in fds:
            os.close(fd)
        self.children[pid] = conn
        self.sel.register(conn, selectors.EVENT_READ, pid)
        try:
            _send_json(conn, {"ok": True, "pid": pid})
        except OSError:
            self._client_gone(pid)
        self.log(f"child {pid}: {' '.join(req.get('argv', []))[:200]}")

    def _client_gone(self, pid: int) -> None:
        conn = self.children.get(pid)
        if conn is None:
            return
        with contextlib.suppress(OSError):
            data = conn.recv(1)
            if data:  # clients send nothing after the request; ignore stray bytes
                return
        if pid not in self.killed:
            self.log(f"client of child {pid} went away; terminating it")
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
            self.killed[pid] = time.monotonic()
        self.sel.unregister(conn)

    def _reap(self) -> None:
        now = time.monotonic()
        for pid, t in list(self.killed.items()):
            if pid in self.children and now - t > 10:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rc = os.waitstatus_to_exitcode(status)
            rc = 128 - rc if rc < 0 else rc
            conn = self.children.pop(pid, None)
            self.killed.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(conn)
                with contextlib.suppress(OSError):
                    _send_json(conn, {"exit": rc})
                conn.close()


def _child_main(req: dict, fds: list[int], conn: socket.socket, listener: socket.socket,
                sel: selectors.BaseSelector) -> None:
    global _in_child
    rc = 1
    try:
        _in_child = True
        os.setpgid(0, 0)  # own process group: a forwarded signal reaches its subprocesses too
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sel.close()
        listener.close()
        conn.close()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
            os.close(fd)
        os.chdir(req["cwd"])
        os.umask(int(req.get("umask", 0o022)))
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = list(req["argv"])
        _fresh_process_state()
        func = _resolve(req["target"])
        try:
            rc = func()
        except SystemExit as e:
            rc = e.code
        if rc is None:
            rc = 0
        elif not isinstance(rc, int):
            sys.stderr.write(f"{rc}\n")
            rc = 1
    except KeyboardInterrupt:
        rc = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - report as a fresh interpreter would, then exit
        traceback.print_exc()
        rc = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(rc & 0xFF)


def _fresh_process_state() -> None:
    """What a new interpreter would differ in after a fork: random state, thread counts."""
    import random
    import tempfile
    random.seed()
    tempfile.tempdir = None  # TMPDIR is per job
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()
    torch = sys.modules.get("torch")
    n = os.environ.get("OMP_NUM_THREADS")
    if torch is not None and n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _peer_pid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _call_or_import(item: str) -> None:
    obj = _resolve(item)
    if ":" in item and callable(obj):
        obj()


# ---------------------------------------------------------------------------------- client
def server_name(kind: str, python: str, env: dict[str, str]) -> str:
    """One server per (kind, interpreter, import-time environment): a job whose import-time
    variables differ finds, or starts, its own server instead of being refused by another."""
    key = json.dumps([os.path.abspath(python), sorted(import_time_env(env).items())])
    return f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _prestart_in_order(specs: list[dict[str, Any]], env: dict[str, str]) -> None:
    """Start servers before the first job needs them (``prefbias warm``), so preloading overlaps
    Snakemake's start-up and other jobs; each ``{kind, python, target, preload, env}``."""
    for spec in specs:
        full = {**env, **spec.get("env", {})}
        ensure_server(server_name(spec["kind"], spec["python"], full), spec["python"],
                      spec["target"], spec["preload"], env=full)


def socket_path(kind: str, directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or os.environ[ENV_DIR]) / f"{kind}.sock"


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    return s


def ensure_server(kind: str, python: str, target: str, preload: list[str],
                  env: dict[str, str] | None = None,
                  start_timeout: float = START_TIMEOUT_S) -> Path | None:
    """Socket of a ready server for ``kind``, starting it (under a lock) if none runs; ``None``
    if it cannot be started (then the caller runs the job itself)."""
    env = dict(os.environ if env is None else env)
    directory = Path(env[ENV_DIR])
    directory.mkdir(parents=True, exist_ok=True)
    sock = socket_path(kind, directory)
    failed = directory / f"{kind}.failed"
    with open(directory / f"{kind}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            return None
        probe = _connect(sock)
        if probe is not None:
            probe.close()
            return sock
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()  # stale: its server is gone
        cmd = [python, "-m", "prefbias.forkserver", "serve", "--socket", str(sock),
               "--target", target]
        for item in preload:
            cmd += ["--preload", item]
        if env.get(ENV_OWNER):
            cmd += ["--owner-pid", env[ENV_OWNER]]
        with open(directory / f"{kind}.log", "ab") as logf:
            proc = subprocess.Popen(cmd, env=env, cwd=directory, stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < start_timeout:
            if proc.poll() is not None:
                failed.write_text(f"server exited with {proc.returncode}; see {kind}.log\n")
                return None
            probe = _connect(sock)
            if probe is not None:
                probe.close()
                return sock
            time.sleep(0.2)
        proc.kill()
        failed.write_text(f"server not ready within {start_timeout:.0f} s\n")
        return None


def run_via_server(kind: str, *, python: str, target: str, argv: list[str],
                   preload: list[str], env: dict[str, str] | None = None,
                   cwd: str | None = None, stdio: tuple[int, int, int] = (0, 1, 2),
                   on_fallback=None) -> int | None:
    """Run ``target`` with ``argv`` in a child of the ``kind`` server and return its exit
    status, or ``None`` when no server can take the job (the caller then runs it itself)."""
    env = dict(os.environ if env is None else env)
    kind = server_name(kind, python, env)
    sock_path = ensure_server(kind, python, target, preload, env=env)
    if sock_path is None:
        _note(on_fallback, f"no {kind} fork server (see {os.environ.get(ENV_DIR)}/{kind}.log)")
        return None
    conn = _connect(sock_path)
    if conn is None:
        _note(on_fallback, f"{kind} fork server at {sock_path} is not answering")
        return None
    umask = os.umask(0)
    os.umask(umask)
    fds = [_valid_fd(fd) for fd in stdio]
    try:
        _send_json(conn, {"target": target, "argv": argv, "env": env,
                          "cwd": cwd or os.getcwd(), "umask": umask}, fds=fds)
        reply, _ = _recv_json(conn)
    except (OSError, ConnectionError, ValueError) as e:
        conn.close()
        _note(on_fallback, f"{kind} fork server failed: {e}")
        return None
    finally:
        for fd, orig in zip(fds, stdio, strict=True):
            if fd != orig:
                os.close(fd)
    if not reply.get("ok"):
        conn.close()
        _note(on_fallback, f"{kind} fork server refused the job: {reply.get('reason')}")
        return None
    pid = int(reply["pid"])
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                 signal.SIGUSR2)

    def forward(signum, frame):  # noqa: ARG001
        with contextlib.suppress(OSError):
            os.killpg(pid, signum)

    old = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            try:
                msg, _ = _recv_json(conn)
            except InterruptedError:
                continue
            except (ConnectionError, OSError) as e:
                if getattr(e, "errno", None) == errno.EINTR:
                    continue
                sys.stderr.write(f"prefbias: lost the fork server while job {pid} ran: {e}\n")
                return 1
            if "exit" in msg:
                return int(msg["exit"])
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        conn.close()


def _valid_fd(fd: int) -> int:
    try:
        os.fstat(fd)
        return fd
    except OSError:
        return os.open(os.devnull, os.O_RDWR)


def _note(callback, message: str) -> None:
    if callback is not None:
        callback(message)


# ------------------------------------------------------------------------------- warm wrap
def warm_run(cmd: list[str], directory: str | os.PathLike | None = None,
             prestarts: list[dict[str, Any]] | None = None) -> int:
    """Run ``cmd`` (e.g. ``snakemake ...``) with fork servers enabled for its jobs; stop every
    server it started when ``cmd`` ends. Exit status is ``cmd``'s.

    ``prestarts``: servers to start at once, each ``{kind, python, target, preload, env}``
    (``env`` is laid over the job environment); a job finds its server by name, so a prestart
    whose environment does not match the jobs' is simply unused."""
    import shutil
    import tempfile

    own = directory is None
    path = Path(directory or tempfile.mkdtemp(prefix="prefbias-fs-"))
    path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{ENV_DIR: str(path), ENV_OWNER: str(os.getpid())})
    if prestarts:  # one after the other: the first (training) is needed first, and parallel
        # preloads only compete for the same disk and cores
        threading.Thread(target=_prestart_in_order, args=(prestarts, env), daemon=True,
                         name="prestart").start()
    proc = subprocess.Popen(cmd, env=env)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # Snakemake gets its own SIGINT from the terminal
                continue
    finally:
        stop_servers(path)
        if own:
            shutil.rmtree(path, ignore_errors=True)


def stop_servers(directory: str | os.PathLike, timeout: float = 30.0) -> None:
    """SIGTERM every server listening in ``directory`` (found by its socket's peer pid) and
    wait until each has exited."""
    pids = []
    for sock in Path(directory).glob("*.sock"):
        conn = _connect(sock)
        if conn is None:
            continue
        try:
            pid = _peer_pid(conn)
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
        except OSError:
            pass
        finally:
            conn.close()
    t0 = time.monotonic()
    while pids and time.monotonic() - t0 < timeout:
        pids = [p for p in pids if not _exited(p)]
        time.sleep(0.1)


def _exited(pid: int) -> bool:
    """Gone, or a zombie of ours (servers ``prefbias warm`` started ahead are its children)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    except ChildProcessError:
        pass
    return not _alive(pid)


# ------------------------------------------------------------------------------------- cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prefbias.forkserver")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="preload modules, then fork a child per request")
    s.add_argument("--socket", required=True)
    s.add_argument("--target", required=True, help="module:function run in each child")
    s.add_argument("--preload", action="append", default=[],
                   help="module to import, or module:function to call, before serving")
    s.add_argument("--owner-pid", type=int, default=None)
    s.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S)
    args = p.parse_args(argv)
    server = Server(Path(args.socket), args.target, args.preload, args.owner_pid,
                    args.idle_timeout)
    try:
        server.load()
    except Exception as e:
        server.log(f"cannot serve: {type(e).__name__}: {e}")
        return 1
    with contextlib.suppress(SystemExit):  # SIGTERM ends serve() with SystemExit
        server.serve()
    # skip interpreter finalisation: tearing down thousands of modules (torch, HELM) takes
    # minutes on a loaded machine, and the server has nothing left to flush but its log
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    # run the imported module, not this __main__ copy: its globals (in_child) are the ones
    # prefbias.cli reads in a forked child
    from prefbias import forkserver as _fs

    sys.exit(_fs.main())
