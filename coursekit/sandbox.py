"""Run a student's Jupyter kernel in a sandbox.

nbgrader runs (trusted, as the instructor) and starts the kernel through the kernelspec that
`kernelspec()` writes; the kernel command is

    unshare --net --pid --fork --mount --kill-child -- python -m coursekit.sandbox CONFIG -- ipykernel ...

so the kernel gets, where the machine allows it (root, or CAP_SYS_ADMIN):
- a network namespace of its own (no network at all),
- a PID namespace (when the kernel ends, every process it started ends with it),
- a mount namespace in which the course repo, the other submissions and the instructor's home are
  hidden under empty read-only tmpfs mounts (only the Python environment, the data and its own
  folder stay visible) and /tmp, /var/tmp and /dev/shm are private,
- an unprivileged uid of its own (it cannot undo the mounts, read the gradebook or write outside
  its folder), a memory cgroup (the OOM killer ends a kernel past its cap), resource limits
  (processes, file size, no core dumps) and bounded math-library threads.
Where namespaces are not permitted the kernel still gets the limits; `capabilities()` says which
protections are in force and the grading summary prints it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

KERNEL_NAME = "coursekit-sandbox"
UNSHARE = ["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child"]
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def capabilities() -> dict[str, bool]:
    """Which protections this machine allows (checked by trying them)."""
    namespaces = False
    if shutil.which("unshare"):
        probe = subprocess.run([*UNSHARE, "--", "true"], capture_output=True)
        namespaces = probe.returncode == 0
    memory = memory_cgroup(f"probe-{os.getpid()}", 2**30)
    if memory:
        release_cgroup(memory)
    return {"namespaces": namespaces, "drop_uid": os.geteuid() == 0, "cgroup": bool(memory)}


def memory_cgroup(name: str, limit_bytes: int) -> str | None:
    """Create a memory cgroup capped at `limit_bytes` (v2 or v1); None where not permitted.
    A kernel that outgrows it is killed by the OOM killer, and the grader reports a crash."""
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


def release_cgroup(group: str) -> None:
    """Kill what is left in the cgroup and remove it."""
    procs = Path(group) / "cgroup.procs"
    for _ in range(50):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    try:
        os.rmdir(group)
    except OSError:
        pass


def kernelspec(folder: Path, config: dict, namespaces: bool) -> Path:
    """Write the sandbox kernelspec under `folder` (use it as JUPYTER_PATH) and its config."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    config_path = folder / "sandbox.json"
    config_path.write_text(json.dumps(config))
    launcher = [sys.executable, "-m", "coursekit.sandbox", str(config_path), "--",
                sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": ([*UNSHARE, "--"] if namespaces else []) + launcher,
            "display_name": "Python 3 (coursekit sandbox)", "language": "python",
            "interrupt_mode": "message"}    # signals would stop at `unshare`; messages reach the kernel
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return folder


# ---------------------------------------------------------------- inside the sandbox
def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def hide(hidden: list[str], keep: list[str]) -> None:
    """Cover each `hidden` folder with an empty read-only tmpfs and each PRIVATE one with an empty
    writable tmpfs (this mount namespace only), then re-expose the `keep` paths at their places."""
    _mount("--make-rprivate", "/")
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


def limit(config: dict) -> None:
    if config.get("cgroup"):
        Path(config["cgroup"], "cgroup.procs").write_text(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_NPROC, (config["max_processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["max_file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> None:
    config_path, sep, *command = argv
    assert sep == "--" and command, "usage: python -m coursekit.sandbox CONFIG -- command..."
    config = json.loads(Path(config_path).read_text())
    here = os.getcwd()                  # the kernel's folder: autograded/<student>/<assignment>
    uid = config.get("uid")
    if "-f" in command:   # the manager's connection file (mode 600, maybe in /tmp): the kernel's own copy
        i = command.index("-f") + 1
        own = Path(config["runtime_dir"]) / f"kernel-{os.getpid()}-connection.json"
        shutil.copy(command[i], own)
        command[i] = str(own)
        if uid is not None:
            os.chown(own, uid, uid)
    if config.get("namespaces"):
        hide(config["hide"], [*config["keep"], here, config["runtime_dir"]])
    if uid is not None:
        for path in (here, config["runtime_dir"]):
            os.chown(path, uid, uid)
    env = {**os.environ, "HOME": here, "MPLCONFIGDIR": os.path.join(here, ".mpl"),
           **{var: str(config["threads"]) for var in THREAD_VARS}}
    limit(config)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])
