"""The grading modes the kit supports, made on this machine for the tests (which run as root).

    root with namespaces    the machine as it is: the full sandbox (the grading suite's mode)
    root without them       `container(...)`: Docker's default confinement, as Gradescope's containers
                            have it: root without CAP_SYS_ADMIN (Docker's capability set), so no
                            namespaces and no mounts; /sys/fs/cgroup read-only; an own PID namespace;
                            a memory limit set from outside through a cgroup the container cannot write
    a normal user           `normal_user(...)`: an unprivileged uid, no capabilities, a copy of the
                            course it owns

Both run the command in a private mount namespace that the test creates first (`unshare --mount`).
There, where the Python environment sits under a folder other users cannot enter (pyenv under
/root), that folder is covered by an empty tmpfs with the environment put back at its place: the
machine then looks like one whose Python other users can read (Debian's /usr, a Docker image's
/usr/local, the interpreter setup.sh installs under /opt). Nothing of it outlives the command.

    python -m tests.modes inside [--cgroup DIR] [--uid UID] [--container] [--cover PATH]... -- CMD...
    python -m tests.modes grade JOB.json...   grade_batch as each job says, one after the other in
                                              this process; each job's results as JSON

`run_zip` runs a Gradescope zip's `run_autograder` as Gradescope does, in the emulated container
(Gradescope's 2 CPUs / 3 GB pair, GRADESCOPE_PAIR); tests/test_gradescope.py grades every
assignment's submissions with it, so the container mode grades each assignment there.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Docker's default capability set (moby's oci/caps/defaults.go): no CAP_SYS_ADMIN, no CAP_SYS_RESOURCE.
DOCKER_CAPS = ("chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
               "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap")
NORMAL_UID = 59999          # the normal user of the tests (the sandbox's own uids start at 61000)
GRADESCOPE_PAIR = (2, 3 * 2**30)   # 2 CPUs, 3 GB: the pair autograder/README.md recommends


def why_not() -> str | None:
    """Why the modes cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "the grading modes are made by root (unshare, setpriv): this test runs as a normal user"
    for tool in ("unshare", "setpriv", "mount"):
        if not shutil.which(tool):
            return f"{tool} (util-linux) is not installed"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"this machine refuses mount and PID namespaces: {probe.stderr.decode().strip()}"
    return None


def scratch(name: str) -> Path:
    """A folder every uid may enter (pytest's own temporary folders are root's alone), removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix=f"ck-{name}-"))
    folder.chmod(0o755)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def unreadable_ancestors(paths) -> list[str]:
    """The folders on the way to `paths` that other users cannot enter (highest first, no duplicates)."""
    found = []
    for path in paths:
        for parent in reversed(Path(path).resolve().parents):
            if parent != Path("/") and not parent.stat().st_mode & stat.S_IXOTH:
                if str(parent) not in found:
                    found.append(str(parent))
                break
    return found


def python_paths() -> list[str]:
    """What a sandbox must read of this Python: the environment and the interpreter it was made from."""
    return list(dict.fromkeys([sys.prefix, sys.base_prefix]))


def container(command: list[str], cgroup: str | None = None) -> list[str]:
    """`command` as Docker's root runs it: see the module docstring."""
    return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
            sys.executable, "-m", "tests.modes", "inside", "--container",
            *(["--cgroup", cgroup] if cgroup else []), *_covers(), "--", *command]


def normal_user(command: list[str], uid: int = NORMAL_UID) -> list[str]:
    """`command` as an unprivileged user: see the module docstring."""
    return ["unshare", "--mount", "--propagation", "private",
            sys.executable, "-m", "tests.modes", "inside", "--uid", str(uid), *_covers(), "--", *command]


def _covers() -> list[str]:
    return [arg for path in python_paths() for arg in ("--cover", path)]


def own_copy(repo: Path, dest: Path, uid: int, graded_before: bool = False) -> Path:
    """A copy of the course repository (the files git tracks) owned by `uid`: a fresh clone, whose
    first grading makes nbgrader's empty gradebook (`alembic`: seconds); with `graded_before`, the
    copy carries this checkout's (`.build/empty-gradebook/`, made here if missing), as a course
    graded once has it."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split("\0")):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (repo / name).is_file():
            shutil.copy2(repo / name, target)
    if graded_before:
        from coursekit import REPO
        from coursekit.grading.gradebook import empty_gradebook

        cached = empty_gradebook()
        (dest / cached.relative_to(REPO)).parent.mkdir(parents=True)
        shutil.copyfile(cached, dest / cached.relative_to(REPO))
    chown_tree(dest, uid)
    return dest


def chown_tree(path: Path, uid: int) -> None:
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, uid)
        for name in files:
            os.lchown(os.path.join(folder, name), uid, uid)


def peak_memory(group: str) -> int | None:
    """The most memory the processes of a memory cgroup held at once (v2 memory.peak, v1
    memory.max_usage_in_bytes); None where the kernel does not record it."""
    for name in ("memory.peak", "memory.max_usage_in_bytes"):
        path = Path(group, name)
        if path.exists():
            return int(path.read_text().split()[0])
    return None


def gradescope_root(zip_path: Path, root: Path, aid: str, notebook: bytes) -> Path:
    """An AUTOGRADER_ROOT as Gradescope's image has it after setup.sh (the installed environment
    stands in for the venv it builds; the source readable by root alone), with one submission."""
    (root / "submission").mkdir(parents=True)
    shutil.unpack_archive(zip_path, root / "source")
    os.symlink(sys.prefix, root / "venv")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission" / f"{aid}.ipynb").write_bytes(notebook)
    subprocess.run(["chmod", "-R", "go-rwx", str(root / "source")], check=True)
    return root


def anonymous_memory(group: str) -> int:
    """Memory of a cgroup's processes that is not file cache (what an out-of-memory kill frees):
    v2 memory.stat `anon`, v1 `total_rss`."""
    stat = dict(line.split() for line in Path(group, "memory.stat").read_text().splitlines())
    return int(stat.get("anon", stat.get("total_rss", 0)))


def run_gradescope(root: Path, cpus: int, memory_bytes: int) -> tuple[subprocess.CompletedProcess, float, int | None]:
    """The zip's run_autograder in the emulated container, its memory limited from outside to
    `memory_bytes` (Gradescope's resource pair) and `cpus` math threads: (process, seconds, peak of
    its processes' memory without file cache, sampled every 0.2 s)."""
    from coursekit.grading import sandbox

    group = sandbox.memory_cgroup(f"gradescope-{os.getpid()}-{root.name}", memory_bytes)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "COURSEKIT_CPUS": str(cpus)}
    started, peak = time.monotonic(), None
    try:
        with open(root / "stdout.txt", "w") as out, open(root / "stderr.txt", "w") as err:
            proc = subprocess.Popen(container(["bash", str(root / "run_autograder")], group),
                                    cwd=Path(__file__).parent.parent, env=env, stdout=out, stderr=err)
            while proc.poll() is None:
                if group:
                    peak = max(peak or 0, anonymous_memory(group))
                time.sleep(0.2)
    finally:
        if group:
            sandbox.release_cgroup(group)
    proc.stdout, proc.stderr = (root / "stdout.txt").read_text(), (root / "stderr.txt").read_text()
    return proc, time.monotonic() - started, peak


def run_zip(zip_path: Path, root: Path, aid: str, notebook: bytes) -> tuple[dict, float, int | None]:
    """One submission graded by the zip's run_autograder as Gradescope grades it: in the emulated
    container under GRADESCOPE_PAIR where the modes can be made here (why_not), else as this user
    with the pair's math threads. `root` must be a folder every uid may enter (`scratch`). Returns
    results.json, seconds, and the container's peak memory without file cache (None outside it)."""
    root = gradescope_root(zip_path, root, aid, notebook)
    if why_not() is None:
        proc, seconds, peak = run_gradescope(root, *GRADESCOPE_PAIR)
    else:
        env = {**os.environ, "AUTOGRADER_ROOT": str(root), "COURSEKIT_CPUS": str(GRADESCOPE_PAIR[0])}
        started, peak = time.monotonic(), None
        proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True,
                              text=True, timeout=900)
        seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text()), seconds, peak


def kill_user(uid: int) -> None:
    """Every process of `uid` killed (what a test leaves behind in the normal-user mode)."""
    subprocess.run(["pkill", "-KILL", "-U", str(uid)], capture_output=True)


# ---------------------------------------------------------------- inside the test's namespaces
def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _cover(paths: list[str]) -> None:
    """Put an empty tmpfs over each folder on the way to `paths` that others cannot enter, and the
    paths themselves back at their places (read-only)."""
    blocked = unreadable_ancestors(paths)
    if not blocked:
        return
    stash = Path("/mnt")
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(stash))
    kept = []
    for i, path in enumerate(p for p in paths if any(Path(p).is_relative_to(b) for b in blocked)):
        holder = stash / str(i)
        holder.mkdir()
        _mount("--rbind", path, str(holder))
        kept.append((path, holder))
    for folder in blocked:
        _mount("-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", folder)
    for path, holder in kept:
        Path(path).mkdir(parents=True, exist_ok=True)
        _mount("--move", str(holder), path)


def _read_only_cgroups() -> None:
    """Every cgroup mount read-only, as Docker mounts /sys/fs/cgroup in a container."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted({p for p in points if p.startswith("/sys/fs/cgroup")}, key=len):
        subprocess.run(["mount", "-o", "remount,bind,ro", point], check=True)


def inside(args: argparse.Namespace) -> None:
    if args.cgroup:                     # the memory limit, set from outside the container
        Path(args.cgroup, "cgroup.procs").write_text(str(os.getpid()))
    _cover(args.cover)
    if args.container:
        _read_only_cgroups()
        caps = ",".join(["-all", *(f"+{c}" for c in DOCKER_CAPS)])
        os.execvp("setpriv", ["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", "--", *args.command])
    if args.uid is not None:
        os.execvp("setpriv", ["setpriv", f"--reuid={args.uid}", f"--regid={args.uid}", "--clear-groups",
                              "--bounding-set=-all", "--inh-caps=-all", "--", *args.command])
    os.execvp(args.command[0], args.command)


def grade(job_file: str) -> None:
    """Grade one batch as `make grade` does (job: assignment, submissions, out, work, source, limits,
    jobs) and write {student: {status, score, max_score, cells, reason, review}} to out/results.json.
    Several batches in one process, as the grading suite grades them (one interpreter start each
    would cost ~1.5 core-seconds of imports)."""
    from coursekit.grading.batch import grade_batch
    from coursekit.grading.report import print_summary

    job = json.loads(Path(job_file).read_text())
    report = grade_batch(job["assignment"], Path(job["submissions"]), out=Path(job["out"]), work=Path(job["work"]),
                         source=Path(job["source"]) if job.get("source") else None, jobs=job.get("jobs", 1),
                         limits=job.get("limits"))
    print_summary(report)
    results = {name: {"status": r.status, "score": r.score, "max_score": r.max_score, "cells": r.cells,
                      "reason": r.reason, "review": r.review}
               for name, r in report.results.items()}
    Path(job["out"], "results.json").write_text(json.dumps({"results": results, "cell_max": report.cell_max,
                                                            "isolation": report.isolation}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["grade"]:
        for job_file in sys.argv[2:]:
            grade(job_file)
        sys.exit(0)
    split = sys.argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tests.modes")
    parser.add_argument("verb", choices=["inside"])
    parser.add_argument("--cgroup")
    parser.add_argument("--uid", type=int)
    parser.add_argument("--container", action="store_true")
    parser.add_argument("--cover", action="append", default=[])
    ns = parser.parse_args(sys.argv[1:split])
    ns.command = sys.argv[split + 1:]
    inside(ns)
