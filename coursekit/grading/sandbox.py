"""The sandbox every piece of student code runs in: the Jupyter kernel and the verification runner.

Both are forked from the zygote (`zygote.py`), which has the course's libraries imported already,
and enter the sandbox right after the fork, before any student code runs. Where the machine allows
it (root, or CAP_SYS_ADMIN) a sandboxed process gets

- network, PID, IPC and mount namespaces of its own: no network at all; every process it starts
  ends with it; the course repo, the other submissions and the instructor's home hidden under empty
  read-only tmpfs mounts (only the Python environment, the data and its own folders stay visible);
  private /tmp, /var/tmp and /dev/shm;
- an unprivileged uid (it cannot undo the mounts, read the gradebook or write outside its folder),
  a memory cgroup (the OOM killer ends it past its cap), resource limits (processes, file size, no
  core dumps) and a fixed number of math-library threads.

Where namespaces or cgroups are not permitted it still gets the limits; `capabilities()` says which
protections are in force, and the grading summary prints it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

UNSHARE_PROBE = ["unshare", "--net", "--pid", "--fork", "--mount", "--ipc", "--", "true"]
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# The only variables of the grader's environment a sandbox sees (no tokens, no credentials).
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "COURSE_DATA_DIR", "OMP_WAIT_POLICY", "MPLBACKEND",
            "NBGRADER_EXECUTION",                  # nbgrader's own "this is a grading run" signal
            "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
KEPT_PREFIXES = ("JPY_", "LC_", "PYDEVD_")
SANDBOX_UID = 61000           # a sandbox runs as uid SANDBOX_UID + worker slot
CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
# linux/sched.h
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000


@dataclass(frozen=True)
class Capabilities:
    """Which protections this machine allows (found by trying them)."""

    namespaces: bool
    drop_uid: bool
    cgroup: bool

    def describe(self) -> str:
        parts = [f"memory cap (cgroup)" if self.cgroup else
                 "NO memory cap: memory cgroups are not writable on this machine"]
        if self.namespaces:
            parts.append("no network (own network namespace), own PID and mount namespace "
                         "(course files hidden)")
        else:
            parts.append("NO network isolation and course files NOT hidden: namespaces are not "
                         "permitted on this machine (run as root for full isolation)")
        parts.append("student code as an unprivileged uid" if self.drop_uid else
                     "student code as your own user")
        return "; ".join(parts)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandboxed process needs; the same type for the kernel and the runner."""

    workdir: str                      # its folder (cwd and HOME)
    threads: int                      # math-library threads
    writable: tuple[str, ...] = ()    # further folders it owns (kernel sockets): kept visible
    namespaces: bool = False
    uid: int | None = None            # drop to this uid (only when started as root)
    cgroup: str | None = None         # memory cgroup to join
    hide: tuple[str, ...] = ()        # folders covered by an empty read-only tmpfs
    keep: tuple[str, ...] = ()        # paths inside hidden folders that stay visible
    max_processes: int = 512
    max_file_bytes: int = 256 * 2**20
    gpu: str | None = None            # CUDA_VISIBLE_DEVICES, when the machine has several GPUs
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SandboxConfig":
        return cls(**{**data, **{k: tuple(data.get(k, ())) for k in ("writable", "hide", "keep")}})


# ---------------------------------------------------------------- the grader's side
def capabilities() -> Capabilities:
    namespaces = False
    if shutil.which("unshare"):
        namespaces = subprocess.run(UNSHARE_PROBE, capture_output=True).returncode == 0
    memory = memory_cgroup(f"probe-{os.getpid()}", 2**30)
    if memory:
        release_cgroup(memory)
    return Capabilities(namespaces=namespaces, drop_uid=os.geteuid() == 0, cgroup=bool(memory))


def memory_cgroup(name: str, limit_bytes: int) -> str | None:
    """Create a memory cgroup capped at `limit_bytes` (v2 or v1); None where not permitted.
    A sandbox that outgrows it is killed by the OOM killer, and the grader reports a crash."""
    try:
        if (CGROUP_V2 / "cgroup.controllers").exists():
            if "memory" not in (CGROUP_V2 / "cgroup.subtree_control").read_text():
                (CGROUP_V2 / "cgroup.subtree_control").write_text("+memory")
            group, limit_file = CGROUP_V2 / f"coursekit-{name}", "memory.max"
        elif CGROUP_V1.is_dir():
            group, limit_file = CGROUP_V1 / f"coursekit-{name}", "memory.limit_in_bytes"
        else:
            return None
        group.mkdir(exist_ok=True)
        (group / limit_file).write_text(str(limit_bytes))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
        return str(group)
    except OSError:
        return None


def kill_cgroup(group: str) -> None:
    """Kill every process in the cgroup (the sandbox and whatever it started)."""
    procs = Path(group) / "cgroup.procs"
    for _ in range(50):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def release_cgroup(group: str) -> None:
    """Kill what is left in the cgroup and remove it."""
    kill_cgroup(group)
    try:
        os.rmdir(group)
    except OSError:
        pass


# ---------------------------------------------------------------- inside, right after the fork
def unshare_namespaces() -> None:
    """New network, PID, IPC and mount namespaces (the PID one applies to the next fork)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def hide(hidden: tuple[str, ...], keep: tuple[str, ...]) -> None:
    """Cover each `hidden` folder with an empty read-only tmpfs and each PRIVATE one with an empty
    writable tmpfs (this mount namespace only), then re-expose the `keep` paths at their places."""
    _mount("--make-rprivate", "/")
    _mount("-t", "proc", "proc", "/proc")            # this PID namespace's processes only
    stash = Path("/mnt")            # a private tmpfs over /mnt holds the keeps meanwhile
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(stash))
    kept = []
    for i, path in enumerate(p for p in keep if p and Path(p).exists()):
        holder = stash / str(i)
        holder.mkdir()
        _mount("--rbind", path, str(holder))
        kept.append((path, holder))
    tops = [(p, True) for p in hidden] + [(p, False) for p in PRIVATE]
    covered = [(p, ro) for p, ro in tops if Path(p).is_dir() and not any(
        Path(p).is_relative_to(q) and p != q for q, _ in tops)]
    for path, ro in covered:
        _mount("-t", "tmpfs", "-o", "size=1m,mode=755" if ro else "size=512m,mode=1777", "tmpfs", path)
    for path, holder in kept:
        Path(path).mkdir(parents=True, exist_ok=True)       # inside the fresh tmpfs
        _mount("--move", str(holder), path)
    for path, ro in covered:
        if ro:
            _mount("-o", "remount,ro,bind", path)


def enter(config: SandboxConfig) -> None:
    """Confine this process (forked, still privileged): mounts, cgroup, limits, threads, uid.
    Called after `unshare_namespaces()` and a fork when `config.namespaces` is set."""
    if config.namespaces:
        hide(config.hide, (*config.keep, config.workdir, *config.writable))
    if config.cgroup:
        # PIDs written here are read in the writer's PID namespace: this process itself.
        Path(config.cgroup, "cgroup.procs").write_text(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_NPROC, (config.max_processes,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (config.max_file_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir(config.workdir)
    kept = {k: v for k, v in os.environ.items() if k in KEPT_ENV or k.startswith(KEPT_PREFIXES)}
    env = {**kept, **config.env, "HOME": config.workdir,
           "MPLCONFIGDIR": os.path.join(config.workdir, ".mpl"),
           **{var: str(config.threads) for var in THREAD_VARS}}
    if config.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = config.gpu
    os.environ.clear()
    os.environ.update(env)
    torch = __import__("sys").modules.get("torch")
    if torch is not None:                  # imported by the zygote with one thread
        torch.set_num_threads(config.threads)
    if config.uid is not None:
        for folder in (config.workdir, *config.writable):
            os.chown(folder, config.uid, config.uid)
        os.setgroups([])
        os.setgid(config.uid)
        os.setuid(config.uid)
