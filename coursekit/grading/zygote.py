"""A fork server for sandboxes: the course's libraries imported once, a sandbox forked per run.

Importing torch, torchvision, scikit-learn and friends takes seconds of CPU; a class of submissions
would pay it twice per student (the kernel, then the verification runner). The zygote imports them
once, single-threaded and without touching CUDA, and forks a fresh process for every sandbox:

    serve   python -m coursekit.grading.zygote serve SOCKET MODULE...
            (one per batch, trusted) imports MODULE..., then answers `spawn` requests on SOCKET
    launch  python -m coursekit.grading.zygote launch SOCKET CONFIG -- KERNEL-ARGS...
            the kernelspec's argv: jupyter_client starts it like a kernel; it asks the zygote for a
            sandboxed ipykernel and lives exactly as long as that kernel does

A spawn forks a *manager* (still trusted), which unshares the namespaces and forks the sandboxed
process (PID 1 of its namespace), enters the sandbox (`sandbox.enter`) and runs the target: an
ipykernel, or the verification runner (`runner.main`). The manager reports the pid, then the exit
code; when the requesting connection closes first (the launcher was killed, the grader gave up) it
kills the sandbox, and with it everything the sandbox started. The socket lives in a root-only
folder that sandboxes never see (their /tmp is private), so student code cannot spawn anything.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from . import sandbox

HEADER = struct.Struct("!I")
MAX_FDS = 8


# ---------------------------------------------------------------- framing (both sides)
def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    data = json.dumps(message).encode()
    payload = HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], list(fds))
    else:
        sock.sendall(payload)


def receive(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message and the file descriptors that came with it; (None, []) at end of stream."""
    chunk, fds, _, _ = socket.recv_fds(sock, 65536, MAX_FDS)
    if not chunk:
        return None, fds
    while len(chunk) < HEADER.size:
        more = sock.recv(65536)
        if not more:
            return None, fds
        chunk += more
    (size,) = HEADER.unpack(chunk[:HEADER.size])
    body = chunk[HEADER.size:]
    while len(body) < size:
        more = sock.recv(size - len(body))
        if not more:
            return None, fds
        body += more
    return json.loads(body[:size]), fds


# ---------------------------------------------------------------- the server
def serve(socket_path: str, modules: list[str]) -> None:
    for var in sandbox.THREAD_VARS:       # no thread pools may exist when we fork
        os.environ[var] = "1"
    # OpenMP reads this once, at load: threads that spin while they wait make every sandbox that
    # shares the cores with another (parallel workers, the other sandbox) many times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The imports make ~450,000 objects that live as long as the zygote: collecting them while they
    # were made took a fifth of the imports' CPU. Frozen (gc.freeze), they stay outside the
    # collector's generations, here and in every forked sandbox: a full collection there neither
    # walks them nor copies their pages (copy-on-write). Objects made later are collected as usual.
    gc.disable()
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:                 # the sandbox imports it again and shows the real error
            failed.append(name)
    gc.freeze()
    gc.enable()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise RuntimeError(f"the zygote has {threads} threads after its imports: forking is unsafe")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)        # managers are reaped automatically
    parent = os.getppid()
    server.settimeout(1.0)
    print(json.dumps({"ready": True, "failed": failed}), flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            if os.getppid() != parent:                   # the grader is gone: so are we
                return
            continue
        conn.settimeout(None)
        request, fds = receive(conn)
        if request is None or request.get("op") != "spawn":
            conn.close()
            _close(fds)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            _manage(conn, request, fds)      # never returns
        conn.close()
        _close(fds)


def _close(fds) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _manage(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """The manager: fork the sandboxed process, report its pid and exit code, kill it if asked."""
    try:
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        config = sandbox.SandboxConfig.from_json(request["config"])
        if config.namespaces:
            sandbox.unshare_namespaces()
        else:                       # no PID namespace: whatever the sandbox starts stays below us
            sandbox.become_subreaper()
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run(request, fds, config)        # never returns
        _close(fds)
        send(conn, {"pid": pid})
        _supervise(conn, pid, config)
    except BaseException:
        try:
            send(conn, {"error": traceback.format_exc(limit=3)})
        except OSError:
            pass
    finally:
        os._exit(0)


WATCH_SECONDS = 0.25        # how often the watchdog sums a cgroup-less sandbox's memory


def _supervise(conn: socket.socket, pid: int, config: sandbox.SandboxConfig) -> None:
    """Until the sandbox ends: kill it when the requester closes the connection or asks, or (without
    a memory cgroup) when its processes together hold more than its cap. Then kill whatever it left
    running and report its exit code."""
    pidfd = os.pidfd_open(pid)
    watch = selectors.DefaultSelector()
    watch.register(pidfd, selectors.EVENT_READ)
    watch.register(conn, selectors.EVENT_READ)
    # Without a PID namespace, the manager watches what the sandbox started: how many processes (the
    # instructor's own user shares its process limit with the grader and the classmates) and, without
    # a memory cgroup, how much memory they hold together.
    memory = config.memory_bytes if not config.cgroup else None
    watchdog = not config.namespaces
    killed, why, status = False, "", None
    while status is None:
        for key, _ in watch.select(WATCH_SECONDS if watchdog and not killed else None):
            if key.fd == pidfd:
                _, status = os.waitpid(pid, 0)
                break
            message, _ = receive(conn)
            if message is None or message.get("op") == "kill":
                _kill(pid, config)
                killed = True
                watch.unregister(conn)
        if watchdog and not killed and status is None:
            ended = sandbox.reap()                 # orphans that came to us (subreaper)
            if pid in ended:
                status = ended[pid]
                continue
            started = [pid, *sandbox.descendants(pid)]
            if len(started) > config.max_processes:
                why = "processes"
            elif memory and sandbox.over_memory(started, memory):
                why = "memory"
            if why:
                _kill(pid, config)
                killed = True
    _kill(pid, config)                             # what it left behind
    if not config.namespaces:
        sandbox.reap_all()                         # the orphans it adopted (they count as processes)
    try:
        send(conn, {"exit": os.waitstatus_to_exitcode(status), "killed": killed, "why": why})
    except OSError:
        pass


def _kill(pid: int, config: sandbox.SandboxConfig) -> None:
    """Kill the sandbox and everything it started: PID 1 of its namespace takes everything with it;
    without a PID namespace its process group and every process below this manager (a subreaper:
    orphans and escapees that called setsid included). The grader then kills what is left of its uid
    (`sandbox.kill_uid`), before the next sandbox of that uid starts."""
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    if not config.namespaces:
        sandbox.kill_below(os.getpid())


def _run(request: dict, fds: list[int], config: sandbox.SandboxConfig) -> None:
    """In the sandboxed process: wire the descriptors, confine, run the target."""
    code = 70
    try:
        for target, fd in enumerate(fds):        # stdin, stdout, stderr, then the target's own
            if fd != target:
                os.dup2(fd, target)
        os.closerange(len(fds), 1 << 16)
        os.setsid()
        # As PID 1 of its namespace, a process only gets the signals it handles: the grader's
        # interrupt (SIGINT) must raise KeyboardInterrupt, as in any Python program.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()                # the requester's environment, not the zygote's
        os.environ.update(request.get("env") or {})
        sandbox.enter(config)
        if request["mode"] == "kernel":
            if "matplotlib" in sys.modules:   # imported before ipykernel could choose its backend
                sys.modules["matplotlib"].rcParams["backend"] = "module://matplotlib_inline.backend_inline"
            # ipykernel builds a debugger where debugpy imports: 55-83 ms of every kernel's start, and
            # nobody attaches a debugger to a grading kernel
            sys.modules.setdefault("debugpy", None)
            sys.argv = ["ipykernel_launcher", "--IPKernelApp.parent_handle=1", *request["argv"]]
            from ipykernel import kernelapp
            kernelapp.launch_new_instance()
            code = 0
        elif request["mode"] == "runner":
            from . import runner
            code = runner.main()
        else:
            raise ValueError(f"unknown sandbox mode {request['mode']!r}")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        try:
            os.write(2, traceback.format_exc().encode())
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)


# ---------------------------------------------------------------- the grader's handle
class Zygote:
    """Start and talk to a zygote (one per batch)."""

    def __init__(self, modules: list[str], folder: Path, env: dict | None = None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        self.socket_path = str(folder / "zygote.sock")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.grading.zygote", "serve", self.socket_path, *modules],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            start_new_session=True)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote did not start:\n{self.process.stderr.read()}")
        self.failed = json.loads(line)["failed"]

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Spawner:
    """A zygote's clients' handle (what `verify()` needs): start sandboxes through its socket."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    def spawn(self, mode: str, config: sandbox.SandboxConfig, fds: list[int],
              env: dict[str, str], argv: list[str] = ()) -> tuple[socket.socket, int]:
        """Start a sandbox; returns the manager connection (close it to kill the sandbox) and the pid."""
        return request_spawn(self.socket_path, mode, config, fds, env, argv)


def request_spawn(socket_path: str, mode: str, config: sandbox.SandboxConfig, fds: list[int],
                  env: dict[str, str], argv: list[str] = ()) -> tuple[socket.socket, int]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    send(conn, {"op": "spawn", "mode": mode, "config": config.to_json(), "env": dict(env),
                "argv": list(argv)}, fds)
    reply, _ = receive(conn)
    if reply is None or "pid" not in reply:
        conn.close()
        raise RuntimeError(f"the zygote could not start a sandbox: {(reply or {}).get('error', 'no reply')}")
    return conn, reply["pid"]


def wait_exit(conn: socket.socket, timeout: float | None = None) -> int | None:
    """The sandbox's exit code (None if it did not end within `timeout`)."""
    conn.settimeout(timeout)
    try:
        reply, _ = receive(conn)
    except (TimeoutError, socket.timeout):
        return None
    finally:
        conn.settimeout(None)
    return None if reply is None else reply.get("exit")


# ---------------------------------------------------------------- the kernel launcher
def kernelspec(folder: Path, socket_path: str, config: sandbox.SandboxConfig, runtime_dir: Path) -> Path:
    """Write a kernelspec (use `folder` as JUPYTER_PATH) whose kernels come from the zygote."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    config_path = folder / "sandbox.json"
    config_path.write_text(json.dumps(config.to_json()))
    argv = [sys.executable, "-m", "coursekit.grading.zygote", "launch", socket_path, str(config_path),
            str(runtime_dir), "--", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3 (coursekit sandbox)", "language": "python",
            "interrupt_mode": "message"}      # signals would reach the launcher, not the kernel
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return folder


KERNEL_NAME = "coursekit-sandbox"


STDERR_KEPT = 4096          # the end of a kernel's stderr the launcher keeps for the grader


def launch(socket_path: str, config_path: str, runtime_dir: str, kernel_args: list[str]) -> int:
    """Stand in for a kernel process: the sandboxed kernel's exit is ours. Its stderr passes through
    us, and its end is left next to the config (`kernel_stderr`): what a kernel that died while
    starting said (the grader reports it)."""
    config = sandbox.SandboxConfig.from_json(json.loads(Path(config_path).read_text()))
    kept = Path(config_path).with_name(f"kernel-{os.getpid()}.stderr")
    if "-f" in kernel_args:   # the manager's connection file (mode 600): the kernel's own copy
        i = kernel_args.index("-f") + 1
        own = Path(runtime_dir) / f"kernel-{os.getpid()}.json"
        shutil.copy(kernel_args[i], own)
        if config.uid is not None:
            os.chown(own, config.uid, config.uid)
        kernel_args[i] = str(own)
    tail = bytearray()
    read, write = os.pipe()
    relay = threading.Thread(target=_relay, args=(read, tail), daemon=True)
    relay.start()
    try:
        conn, _ = request_spawn(socket_path, "kernel", config, [0, 1, write], dict(os.environ), kernel_args)
    except Exception:
        kept.write_text(traceback.format_exc(limit=2)[-STDERR_KEPT:])
        raise
    finally:
        os.close(write)
    code = wait_exit(conn)
    relay.join(timeout=2)          # what the kernel's own children still hold open is not waited for
    kept.write_bytes(bytes(tail))
    return 1 if code is None else code


def _relay(fd: int, tail: bytearray) -> None:
    """Copy the kernel's stderr to ours, keeping its last STDERR_KEPT bytes in `tail`."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        try:
            os.write(2, chunk)
        except OSError:
            pass
        tail += chunk
        del tail[:-STDERR_KEPT]


def kernel_stderr(folder: Path) -> str:
    """The last line the kernels launched from the kernelspec in `folder` wrote to stderr (the newest
    launcher first), '' if none; the files are removed."""
    said = ""
    for path in sorted(folder.glob("kernel-*.stderr"), key=lambda p: p.stat().st_mtime, reverse=True):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        said = said or (lines[-1] if lines else "")
        path.unlink()
    return said


if __name__ == "__main__":
    verb, *args = sys.argv[1:]
    if verb == "serve":
        serve(args[0], args[1:])
    elif verb == "launch":
        sock, config_file, runtime, sep, *rest = args
        assert sep == "--", "usage: zygote launch SOCKET CONFIG RUNTIME -- KERNEL-ARGS"
        sys.exit(launch(sock, config_file, runtime, rest))
    else:
        sys.exit(f"usage: python -m coursekit.grading.zygote serve|launch ...")
