"""Grade a class: the pipeline's steps for every submission, in parallel worker processes.

Layout under `autograder/work/<id>/` (scratch, not committed):
    course/     the master nbgrader course: gradebook.db with every student graded so far,
                autograded/, feedback/, reviews.json; kept between runs, so a re-submission
                replaces that student's old grade
    template/   the kernel's course (source without hidden tests, its gradebook), copied per submission
    batch/<s>/  one working copy per submission: nbgrader's autograde in `autograded/`, the kernel's
                folder `kernel/`, the verification run's folder `verify/`
Results go to `autograder/results/<id>/`: grades.csv, status.csv, cell_scores.csv and
feedback/<student>.html. Hand grades entered in formgrader (`make formgrade`) are in the master
gradebook and kept by re-grading (gradebook.merge); grades.csv and cell_scores.csv include them.

Per submission (in a worker process): intake check → repair → static review → kernel run
(execute.py) → verification run (verify.py) → decision; then, in this process, one at a time:
gradebook merge, feedback, export.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import hashlib
import math
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .. import REPO, nbgrader_run
from .. import notebooks as nbs
from ..config import Assignment, load_course
from . import codescan, execute, gradebook, intake, plan, repair, report, sandbox, verify, zygote
from .report import GradeReport, StudentResult

# Besides what the course's cells import: the kernel, the runner, and what torch imports lazily on
# first use (an optimizer's first step imports torch._dynamo), so no sandbox pays for it again.
BASE_PRELOAD = ["ipykernel.kernelapp", "safetensors.torch", "coursekit.grading.runner",
                "IPython.core.inputtransformer2", "torch._dynamo", "torch.optim"]


@dataclass(frozen=True)
class BatchSetup:
    """Everything a worker needs to grade submissions of one batch (sent to each worker once)."""

    assignment: Assignment
    template: str
    root: str
    socket_path: str
    source: str                    # the instructor's notebook, hidden tests included (trusted)
    preload: tuple[str, ...]
    capabilities: sandbox.Capabilities
    threads: int
    gpus: int
    hide: tuple[str, ...]
    keep: tuple[str, ...]


# ---------------------------------------------------------------- the batch
def grade_batch(assignment_id: str, submissions: Path, out: Path | None = None,
                work: Path | None = None, source: Path | None = None,
                jobs: int | None = None, limits: dict | None = None) -> GradeReport:
    """Grade every submission (a folder or an LMS zip); write grades, statuses, feedback.
    `source` replaces the assignment's notebook (the grading suite grades a prefix of it);
    `limits` overrides its course.toml limits (cell_timeout, memory_gb, ...)."""
    started = time.monotonic()
    phases: dict[str, float] = {}
    clock = [started]

    def lap(name):
        now = time.monotonic()
        phases[name] = round(now - clock[0], 1)
        clock[0] = now

    a = dataclasses.replace(load_course().assignments[assignment_id], **(limits or {}))
    out = out or REPO / "autograder" / "results" / assignment_id
    work = work or REPO / "autograder" / "work" / assignment_id
    jobs = max(1, jobs or cpu_budget())
    source_path = source or a.notebook("source")
    source_nb = nbs.read(source_path)
    template = work / "template"
    shutil.rmtree(template, ignore_errors=True)
    kernel_course(template, a.id, source_nb)
    course = work / "course"
    if (course / "gradebook.db").exists():      # the master gradebook: refreshed, its grades kept
        kernel_course(course, a.id, source_nb)
    else:
        shutil.copytree(template, course)
    for private in (template, course):          # never the sandbox's to read (without a mount namespace)
        private.chmod(0o700)

    lap("kernel courses")
    if submissions.is_file():
        found, skipped = intake.collect_zip(a.id, submissions, course)
    else:
        found, skipped = intake.find_submissions(a.id, submissions)
    lap("intake")

    setup = batch_setup(a, template, work, source_path, source_nb, hide=(str(REPO), str(work), str(Path.home())))
    results = {student: _collect(course, a.id, student, result)
               for student, result in run_workers(setup, found, jobs)}
    lap("grading")

    cell_max = gradebook.autograded_points(course, a.id)
    for r in results.values():
        r.max_score = sum(cell_max.values())
        if r.recorded:
            gradebook.save_record(course, r.student, report.record(r))
            report.annotate(course / "autograded" / r.student / a.id / f"{a.id}.ipynb", report.record(r))
    if any(r.recorded for r in results.values()):
        nbgrader_run.feedback(course, a.id)
    lap("feedback")
    if out.exists():
        shutil.rmtree(out)
    (out / "feedback").mkdir(parents=True)
    for student in results:
        html = course / "feedback" / student / a.id / f"{a.id}.html"
        if html.exists():
            shutil.copy(html, out / "feedback" / f"{student}.html")
    isolation = report.describe_isolation(setup.capabilities, a.cell_timeout, a.notebook_timeout, a.memory_gb)
    lap("export")
    graded = GradeReport(a.id, out, dict(sorted(results.items())), cell_max, skipped,
                         isolation, jobs, round(time.monotonic() - started, 1), phases)
    report.write_tables(graded)
    gradebook.export(course, a.id, out)          # grades.csv, cell_scores.csv: hand grades included
    return graded


def grade_submissions(assignment_id: str, submissions: Path, work: Path, source: Path, template: Path,
                      limits: dict, hide: tuple[str, ...]) -> tuple[StudentResult, dict[str, float]]:
    """One submission graded without a master course (Gradescope: one container per submission):
    the kernel course `template` is ready-made; returns its result and the points per test cell."""
    a = dataclasses.replace(load_course().assignments[assignment_id], **limits)
    found, skipped = intake.find_submissions(a.id, submissions)
    (student, notebook), = found.items()
    nb, why = intake.precheck(notebook, a.max_upload_mb * 2**20)
    if nb is None:              # malformed: nothing will run, so no zygote (seconds of imports) starts
        result = StudentResult(student, "malformed", reason=why)
    else:
        setup = batch_setup(a, template, work, source, nbs.read(source), hide=(*hide, str(REPO)))
        (_, result), = run_workers(setup, found, jobs=1)
    cell_max = gradebook.autograded_points(template, a.id)
    result.max_score = sum(cell_max.values())
    return result, cell_max


def batch_setup(a: Assignment, template: Path, work: Path, source_path: Path,
                source_nb: nbformat.NotebookNode, hide: tuple[str, ...]) -> BatchSetup:
    root = work / "batch"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    preload = tuple(preload_modules(source_nb))
    return BatchSetup(a, str(template), str(root), "", str(source_path), preload, sandbox.capabilities(),
                      threads=1, gpus=gpu_count(), hide=(*hide, str(Path.home())),
                      keep=(sys.prefix, sys.base_prefix, os.environ.get("COURSE_DATA_DIR", "")))


def cpu_budget(cgroup_root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores a batch may use: $COURSEKIT_CPUS where set (the test suite gives each pytest worker its
    share), else the CPUs this process may run on, capped by its cgroup's CPU quota rounded up (in a
    container the affinity counts the host's cores). The sandboxed kernels get this many math threads
    in all, so that a batch beside other torch processes does not run more threads than it has cores."""
    if os.environ.get("COURSEKIT_CPUS"):
        return max(1, int(os.environ["COURSEKIT_CPUS"]))
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root, self_cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"),
                     self_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs this process's cgroup may use (quota / period, the smallest over it and its ancestors),
    or None where no quota is set: cgroup v2 `cpu.max` ("QUOTA PERIOD", "max PERIOD"), cgroup v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none) under `root`/cpu or `root`/cpu,cpuacct."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if controllers == "":                                           # v2 (unified)
            for mount in (root, root / "unified"):
                if (mount / "cgroup.controllers").exists():
                    quotas += [_v2_quota(d) for d in _ancestors(mount, relative)]
                    break
        elif "cpu" in controllers.split(","):                           # v1
            for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / name).is_dir():
                    quotas += [_v1_quota(d) for d in _ancestors(root / name, relative)]
                    break
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _ancestors(mount: Path, relative: str) -> list[Path]:
    """The cgroup's folder and each folder above it up to the mount, those that exist here (in a
    container the host's path of its cgroup may not: then the mount itself is its cgroup)."""
    folders = [mount / relative] if relative else []
    folders += [mount / p for p in Path(relative).parents if str(p) != "."] + [mount]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" or int(period) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def run_workers(setup: BatchSetup, found: dict[str, Path], jobs: int):
    """Grade `found` ({student: notebook}) in `jobs` worker processes; yields (student, result) as
    they finish. The zygote serves them all and is gone afterwards."""
    jobs = max(1, min(jobs, len(found) or 1))
    scratch = Path(tempfile.mkdtemp(prefix="ck-"))          # short: unix socket paths
    check_reachable(setup, scratch)
    zyg = zygote.Zygote(list(setup.preload), scratch / "zygote")
    setup = dataclasses.replace(setup, socket_path=zyg.socket_path,
                                threads=max(1, cpu_budget() // jobs))
    try:
        if jobs == 1:
            _init_worker(None, setup, scratch)
            for student, notebook in found.items():
                yield student, _guarded(student, str(notebook))
            return
        spawn = multiprocessing.get_context("spawn")
        slots = spawn.Queue()
        for slot in range(jobs):
            slots.put(slot)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, initializer=_init_worker,
                                 initargs=(slots, setup, scratch)) as pool:
            futures = {pool.submit(_guarded, s, str(p)): s for s, p in found.items()}
            for future in as_completed(futures):
                student = futures[future]
                try:
                    yield student, future.result()
                except Exception as err:                   # a worker died: the grader's fault
                    yield student, StudentResult(student, "grader error", reason=f"grader error: {err}")
    finally:
        zyg.close()
        for group in _WORKER.pop("cgroups", []):
            sandbox.release_cgroup(group)
        shutil.rmtree(scratch, ignore_errors=True)


class SandboxUnreachable(RuntimeError):
    """The sandbox's uid cannot read what it must (no mount namespace re-exposes it)."""


def check_reachable(setup: BatchSetup, scratch: Path) -> None:
    """Without a mount namespace a sandbox that runs as an unprivileged uid reads the Python
    environment, the data and its folders through the ordinary permissions: stop at once, saying
    what to change, if one of them is closed to it (else every submission would crash)."""
    caps = setup.capabilities
    if caps.namespaces or not caps.drop_uid:
        return
    folders = {"the grading folder": str(Path(setup.root).parent), "the scratch folder": str(scratch)}
    for folder in folders.values():                 # the kit's own: enter, never list
        os.chmod(folder, stat.S_IMODE(os.stat(folder).st_mode) | stat.S_IXOTH)
    needed = {"the Python environment": sys.prefix, "the Python it was made from": sys.base_prefix,
              "the course data (COURSE_DATA_DIR)": os.environ.get("COURSE_DATA_DIR", ""), **folders}
    closed = sandbox.unreachable(sandbox.SANDBOX_UID, needed, enter_only=tuple(folders))
    if closed:
        raise SandboxUnreachable(
            f"student code runs as uid {sandbox.SANDBOX_UID}+ here (root without namespaces), and that uid "
            f"cannot read {', '.join(closed)}: make them readable by all users (a Python under /usr, "
            f"/usr/local or /opt, a data folder and work folder outside a private home), or grade with "
            f"namespaces (root with CAP_SYS_ADMIN)")


def _guarded(student: str, notebook: str) -> StudentResult:
    try:
        return _grade_in_worker(student, notebook)
    except Exception as err:                               # a fault of the grader, not the student
        import traceback
        return StudentResult(student, "grader error",
                             reason=f"grader error: {type(err).__name__}: {err}"[:300] + " | " +
                             traceback.format_exc(limit=2)[-300:])


def kernel_course(folder: Path, aid: str, source: nbformat.NotebookNode) -> Path:
    """Create or refresh the nbgrader course the kernel grades against (an existing gradebook is
    kept): the source notebook without its hidden tests. A new one is copied from a cache keyed by
    the notebook and the nbgrader configuration (`.build/kernel-courses/`), generated once."""
    notebook = nbs.writes(plan.kernel_source(source))
    config = (REPO / "nbgrader_config.py").read_text()
    if (folder / "gradebook.db").exists():
        _generate(folder, aid, notebook, config)
        return folder
    key = hashlib.sha256(f"{aid}\0{notebook}\0{config}".encode()).hexdigest()[:20]
    cached = REPO / ".build" / "kernel-courses" / key
    if not (cached / "gradebook.db").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=cached.parent.mkdir(parents=True, exist_ok=True)
                                        or cached.parent))
        _generate(staging, aid, notebook, config)
        try:
            staging.rename(cached)
        except OSError:                               # another process cached it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cached, folder, dirs_exist_ok=True)
    return folder


def _generate(folder: Path, aid: str, notebook: str, config: str) -> None:
    from nbgrader.converters import GenerateAssignment

    (folder / "source" / aid).mkdir(parents=True, exist_ok=True)
    (folder / "source" / aid / f"{aid}.ipynb").write_text(notebook)
    (folder / "nbgrader_config.py").write_text(config)
    gradebook.seed(folder)
    settings = nbgrader_run.course_config(folder, **{"BaseConverter.force": True,
                                                     "GenerateAssignment.create_assignment": True})
    nbgrader_run.app(GenerateAssignment, folder, settings, assignment_id=aid)


def preload_modules(source: nbformat.NotebookNode) -> list[str]:
    """The modules the course's own cells import (the zygote imports them once per batch)."""
    names = []
    for cell in source.cells:
        if cell.cell_type != "code" or nbs.is_solution(cell):
            continue
        try:
            tree = ast.parse(codescan.transform_magics(nbs.without_markers(cell.source)))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return list(dict.fromkeys([*names, *BASE_PRELOAD]))


def gpu_count() -> int:
    """NVIDIA GPUs on this machine (0 without a driver)."""
    if not shutil.which("nvidia-smi"):
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _collect(course: Path, aid: str, student: str, result: StudentResult) -> StudentResult:
    """Into the master course, one at a time: merge (or forget) and the review state."""
    if result.recorded and result.work:
        flags = gradebook.merge(course, Path(result.work), aid, student)
        if flags:
            result.reason = "; ".join([*filter(None, [result.reason]), *flags])
    else:
        gradebook.forget(course, aid, student)
    gradebook.set_pending(course, student, result.review if result.status == "needs review" else None)
    return result


# ---------------------------------------------------------------- in the worker processes
_WORKER: dict = {}


def _init_worker(slots, setup: BatchSetup, scratch: Path) -> None:
    """A worker's fixed resources: its slot, uid, memory cgroup and folders."""
    slot = 0 if slots is None else slots.get()
    a = setup.assignment
    folder = scratch / f"w{slot}"
    folder.mkdir(parents=True, exist_ok=True)
    group = sandbox.memory_cgroup(f"{os.getpid()}-{slot}", int(a.memory_gb * 2**30)) \
        if setup.capabilities.cgroup else None
    if group and slots is None:                   # this process: released when the batch ends
        _WORKER.setdefault("cgroups", []).append(group)
    elif group:                                   # a worker process: when it exits
        atexit.register(sandbox.release_cgroup, group)
    source = nbs.read(Path(setup.source))
    solution, hidden = nbs.secret_lines(source)
    instructor_code = [c.source for c in source.cells if c.cell_type == "code" and not nbs.is_solution(c)]
    _WORKER.update(setup=setup, slot=slot, folder=folder, cgroup=group, source=source,
                   release=nbs.read(Path(setup.template) / "release" / a.id / f"{a.id}.ipynb"),
                   secrets=solution | hidden, libraries=codescan.library_names(instructor_code))


def _sandbox_config(workdir: Path, writable: tuple[str, ...] = ()) -> sandbox.SandboxConfig:
    setup, slot = _WORKER["setup"], _WORKER["slot"]
    caps = setup.capabilities
    return sandbox.SandboxConfig(
        workdir=str(workdir), threads=setup.threads, writable=writable, namespaces=caps.namespaces,
        uid=sandbox.SANDBOX_UID + slot if caps.drop_uid else None, cgroup=_WORKER["cgroup"],
        hide=setup.hide, keep=setup.keep,
        memory_bytes=None if _WORKER["cgroup"] else int(setup.assignment.memory_gb * 2**30),
        roots=(str(Path(setup.root).parent), str(_WORKER["folder"].parent)),
        gpu=str(slot % setup.gpus) if setup.gpus > 1 else None)   # one GPU: the workers share it


def _grade_in_worker(student: str, notebook: str) -> StudentResult:
    """One submission, start to finish (except what touches the master course)."""
    setup: BatchSetup = _WORKER["setup"]
    a, source, release = setup.assignment, _WORKER["source"], _WORKER["release"]
    start = time.monotonic()
    nb, why = intake.precheck(Path(notebook), a.max_upload_mb * 2**20)
    if nb is None:
        return StudentResult(student, "malformed", reason=why)
    notes = repair.repair(nb, release)
    if not repair.is_of_assignment(nb, source):
        return StudentResult(student, "malformed",
                             reason="not a notebook of this assignment (none of its answer cells)")
    flags = static_review(nb, source)
    plan.insert_export_cells(nb, source)
    work = Path(setup.root) / student
    execute.working_copy(Path(setup.template), work, a.id, student, nb)
    kernel_dir = work / "kernel"
    kernel_dir.mkdir()
    kernel = execute.run_kernel(work, a.id, student, _sandbox_config(kernel_dir, (str(_WORKER["folder"] / "run"),)),
                                setup.socket_path, _WORKER["folder"], a.cell_timeout, a.notebook_timeout)
    if kernel.status == "grader error":
        return StudentResult(student, "grader error", reason=f"grader error: {kernel.reason}",
                             seconds=round(time.monotonic() - start, 1), kernel_seconds=kernel.seconds)
    verify_dir = work / "verify"
    copy_artefacts(kernel_dir / plan.ARTEFACT_FOLDER, verify_dir / plan.ARTEFACT_FOLDER)
    planned = plan.plan(nb, source)
    verification = verify.verify(_Spawner(setup.socket_path), _sandbox_config(verify_dir), dict(os.environ),
                                 planned, list(setup.preload),
                                 verify.Limits(a.cell_timeout, a.notebook_timeout), _WORKER["secrets"])
    if setup.capabilities.drop_uid:
        if not setup.capabilities.namespaces:          # what the runner left, before its uid runs again
            sandbox.kill_uid(sandbox.SANDBOX_UID + _WORKER["slot"])
        for folder in (kernel_dir, verify_dir):
            sandbox.reclaim(str(folder))
    decision = verify.decide(kernel.status, kernel.passed, verification, flags)
    if kernel.recorded:
        gradebook.record_points(work, a.id, student, decision.cells)
    checks = {c.id: {"passed": c.id in verification.verdicts and verification.verdicts[c.id].passed,
                     "ran": c.id in verification.verdicts,
                     "message": verification.verdicts[c.id].message if c.id in verification.verdicts else "",
                     "points": c.points}
              for c in planned if c.kind == "test"}
    reasons = [r for r in [kernel.reason, *decision.reasons] if r]
    if notes:
        reasons.append(f"repaired: {'; '.join(notes)}")
    return StudentResult(
        student, decision.status, score=sum(decision.cells.values()), cells=decision.cells,
        manual=kernel.manual, reason="; ".join(dict.fromkeys(reasons)), review=decision.review,
        checks=checks, seconds=round(time.monotonic() - start, 1), kernel_seconds=kernel.seconds,
        verify_seconds=verification.seconds, recorded=kernel.recorded, work=str(work))


class _Spawner:
    """What verify() needs of the zygote: spawn a sandbox through its socket."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    def spawn(self, mode, config, fds, env, argv=()):
        return zygote.request_spawn(self.socket_path, mode, config, fds, env, argv)


def static_review(nb: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """codescan findings for every cell of student code (answer cells and cells the student added)."""
    owned = {nbs.grade_id(c) for c in source.cells if not nbs.is_solution(c)}
    findings = []
    for cell in nb.cells:
        if cell.cell_type != "code" or nbs.grade_id(cell) in owned:
            continue
        where = nbs.grade_id(cell) or cell.get("id") or "an added cell"
        findings += [f"{where} {f}" for f in codescan.scan(cell.source, _WORKER["libraries"])]
    return findings


def copy_artefacts(src: Path, dest: Path, limit: int = 1 << 30) -> None:
    """Copy what the kernel exported, as untrusted data: regular files only (no symlinks followed),
    two levels deep, at most `limit` bytes in all."""
    dest.mkdir(parents=True, exist_ok=True)
    if not src.is_dir() or src.is_symlink():
        return
    total = 0
    for cell_dir in sorted(src.iterdir())[:64]:
        if cell_dir.is_symlink() or not cell_dir.is_dir():
            continue
        (dest / cell_dir.name).mkdir(exist_ok=True)
        for item in sorted(cell_dir.iterdir())[:64]:
            try:
                fd = os.open(item, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_size + total > limit:
                    continue
                data = f.read()
            total += len(data)
            (dest / cell_dir.name / item.name).write_bytes(data)
