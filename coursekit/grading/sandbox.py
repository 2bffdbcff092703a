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

Where namespaces or cgroups are not permitted (root in Docker or on Gradescope: no CAP_SYS_ADMIN and a
read-only /sys/fs/cgroup; a normal user) it still gets the limits, and instead of the memory cgroup
a data-size limit per process (RLIMIT_DATA) and a watchdog of its manager over all the processes it
started (`zygote._supervise`); without a mount namespace the uid alone keeps it from the grader's
files, so its folders are opened to that uid for traversal only (`open_path`) and `unreachable()`
finds what it could not read. `capabilities()` says which protections are in force, and the
grading summary prints it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import resource
import signal
import stat
import shutil
import subprocess
import tempfile
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
# A sandbox runs as one of the uids SANDBOX_UID .. SANDBOX_UID + SANDBOX_UIDS - 1, leased by its worker
# (`lease_uid`): no other grader on this machine uses it meanwhile. They must belong to nobody else.
SANDBOX_UID, SANDBOX_UIDS = 61000, 1000
# Where the leases are (the first of these that is, or can be made, a folder only root may change).
LEASE_PARENTS = ("/run", "/var/run", tempfile.gettempdir())
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

    @property
    def mode(self) -> str:
        """The grading mode: what the README and SECURITY.md call it."""
        if self.namespaces and self.drop_uid:
            return "full sandbox"
        return "unprivileged uid, no namespaces" if self.drop_uid else "your own user, limits only"

    def describe(self) -> str:
        parts = [f"mode: {self.mode}",
                 "memory cap: memory cgroup" if self.cgroup else
                 "memory cap: a data limit per process (RLIMIT_DATA) and a watchdog over the sandbox's "
                 "processes (memory cgroups are not writable here)"]
        if self.namespaces:
            parts.append("no network (own network namespace), own PID and mount namespace "
                         "(course files hidden)")
        else:
            parts.append("NO network isolation and course files NOT hidden: namespaces are not "
                         "permitted here (root with CAP_SYS_ADMIN gives the full sandbox)")
        parts.append("student code as an unprivileged uid (it reads only what every user may read)"
                     if self.drop_uid else
                     "student code as your own user: it can read and change everything you can, and "
                     "stop your processes (see SECURITY.md)")
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
    memory_bytes: int | None = None   # without a cgroup: RLIMIT_DATA beyond what it inherits, watchdog
    roots: tuple[str, ...] = ()       # the grader's folders that hold its folders (opened: see open_path)
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SandboxConfig":
        return cls(**{**data, **{k: tuple(data.get(k, ())) for k in ("writable", "hide", "keep", "roots")}})


# ---------------------------------------------------------------- the grader's side
def capabilities() -> Capabilities:
    namespaces = False
    if shutil.which("unshare"):
        namespaces = subprocess.run(UNSHARE_PROBE, capture_output=True).returncode == 0
    memory = memory_cgroup(f"probe-{os.getpid()}", 2**30)
    if memory:
        release_cgroup(memory)
    return Capabilities(namespaces=namespaces, drop_uid=os.geteuid() == 0, cgroup=bool(memory))


def unreachable(uid: int, paths: dict[str, str], enter_only: tuple[str, ...] = ()) -> list[str]:
    """Which of `paths` ({what: path}) the uid cannot read (folders: list and enter; those named in
    `enter_only`: enter), each as "what (path)"; found by trying, in a child that becomes the uid."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            missing = [f"{what} ({path})" for what, path in paths.items() if path and not os.access(
                path, os.X_OK if what in enter_only else os.R_OK | (os.X_OK if os.path.isdir(path) else 0))]
            os.write(write, "\n".join(missing).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return [line for line in text.splitlines() if line]


def open_path(folder: str, roots: tuple[str, ...]) -> None:
    """Let other users enter (not list) every folder from the root that holds `folder` down to it:
    a sandbox without a mount namespace reaches its own folders only through the grader's. Folders
    outside `roots` are never changed."""
    path = Path(folder)
    for root in map(Path, roots):
        if path.is_relative_to(root):
            parts = path.relative_to(root).parts
            for step in [root / Path(*parts[:i]) for i in range(len(parts))]:
                mode = step.stat().st_mode
                if not mode & stat.S_IXOTH:
                    os.chmod(step, stat.S_IMODE(mode) | stat.S_IXOTH)
            return


def reclaim(folder: str) -> None:
    """Take a sandbox's folder back (owner: the grader, private), so that the next sandbox of the
    same uid cannot read what this one left."""
    me, group = os.geteuid(), os.getegid()
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(top, name), me, group)
    os.lchown(folder, me, group)
    os.chmod(folder, 0o700)


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


# ---------------------------------------------------------------- the sandbox's uid
@dataclass
class UidLease:
    """A sandbox uid this worker holds alone; `release()` (or the worker's exit) frees it."""

    uid: int
    fd: int

    def release(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class NoSandboxUid(RuntimeError):
    """No sandbox uid could be leased."""


def lease_folder() -> Path:
    """The folder of the uid leases: root's own, not writable by anyone else (a sandbox that could
    write it could take every lease)."""
    for parent in LEASE_PARENTS:
        folder = Path(parent) / "coursekit-sandbox-uids"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
            return folder
    raise NoSandboxUid(f"no folder for the sandbox uid leases: make one of {', '.join(LEASE_PARENTS)} "
                       f"hold a folder coursekit-sandbox-uids owned by root, mode 700")


def lease_uid() -> UidLease:
    """The first sandbox uid no other grader on this machine holds (an exclusive lock on a file per
    uid), its leftover processes killed. Two batches graded at once (two assignments, two courses on one
    server, the tests' parallel workers) must not share a uid: its processes count against one
    process limit machine-wide (a fork bomb in one batch would keep the other's kernels from
    starting), and without namespaces the grader kills all of a uid's processes after each run."""
    folder = lease_folder()
    for uid in range(SANDBOX_UID, SANDBOX_UID + SANDBOX_UIDS):
        fd = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_uid(uid)                    # what a grader that died holding it left running
        return UidLease(uid, fd)
    raise NoSandboxUid(f"all {SANDBOX_UIDS} sandbox uids from {SANDBOX_UID} are in use by other graders: "
                       f"grade with fewer workers (--jobs) or after the other batches")


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
    elif config.uid is not None:
        for folder in (config.workdir, *config.writable):
            open_path(folder, config.roots)
    if config.cgroup:
        # PIDs written here are read in the writer's PID namespace: this process itself.
        Path(config.cgroup, "cgroup.procs").write_text(str(os.getpid()))
    elif config.memory_bytes:
        # What it inherited from the zygote (the course's libraries) plus its cap: like the cgroup,
        # which charges only the pages the sandbox itself adds. The manager's watchdog sums them.
        limit = data_bytes() + config.memory_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    # RLIMIT_NPROC counts every process and thread of the real uid. The sandbox's own uid has nothing
    # else; the instructor's own user (no uid to drop to) has the grader and the classmates' sandboxes
    # too: there the limit only guards the machine, and the manager's watchdog holds the sandbox
    # itself to max_processes.
    processes = config.max_processes if config.uid is not None or os.geteuid() == 0 else \
        user_tasks(os.getuid()) + 4 * config.max_processes
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
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


# ---------------------------------------------------------------- the manager's side: memory, leftovers
def data_bytes(pid: int | str = "self") -> int:
    """A process's data size (VmData: what RLIMIT_DATA limits)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmData:\s+(\d+) kB", status, re.M).group(1)) * 1024


def user_tasks(uid: int) -> int:
    """Processes and threads of a real uid now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            if int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)) == uid:
                count += int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    return count


def descendants(ancestor: int) -> list[int]:
    """Every live process below `ancestor` (children, theirs, ...), from /proc. A subreaper's orphans
    stay below it, so for a sandbox's manager this is everything the sandbox started that still runs."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                state, parent = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if state != "Z":                           # an ended process waiting to be reaped
                children.setdefault(int(parent), []).append(int(entry.name))
    found, todo = [], [ancestor]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def over_memory(pids: list[int], limit: int) -> bool:
    """Whether the processes together hold more than `limit` bytes that no other process shares
    (what they added since the fork: Private_Clean + Private_Dirty + Swap of smaps_rollup). Their
    resident sizes, cheaper to read and never smaller, are summed first."""
    page = os.sysconf("SC_PAGE_SIZE")
    resident = 0
    for pid in pids:
        try:
            resident += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    if resident <= limit:
        return False
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(m) for m in re.findall(r"^(?:Private_Clean|Private_Dirty|Swap):\s+(\d+) kB",
                                                 rollup, re.M)) * 1024
        if total > limit:
            return True
    return False


def kill_uid(uid: int) -> None:
    """SIGKILL every process of a sandbox's uid, which owns nothing else (a child that becomes the
    uid kills everything it may signal: atomic against its forks). Waits until it is done, so that
    the next sandbox of the same uid starts after it."""
    if os.geteuid() != 0:
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 10            # until their parents have reaped them too: a
    while user_tasks(uid) and time.monotonic() < deadline:    # zombie still counts for RLIMIT_NPROC
        time.sleep(0.02)


def kill_below(ancestor: int) -> None:
    """SIGKILL every live process below `ancestor`, until none is left."""
    for _ in range(100):
        pids = descendants(ancestor)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)                # never reaped here: the manager waits for its sandbox itself


def reap_all(seconds: float = 10.0) -> None:
    """Wait for every child (a subreaper's adopted orphans included) to end and reap it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def reap() -> dict[int, int]:
    """Collect every child that has ended: {pid: wait status}."""
    ended = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def become_subreaper() -> None:
    """Orphans of this process's descendants become its children (prctl PR_SET_CHILD_SUBREAPER)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)
