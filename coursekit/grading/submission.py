"""Grading one submission, start to finish, except what touches the master course:

    intake check → repair → static review → kernel run (execute.py) → verification run
    (verify.py) → decision

`grade_one(ctx, student, notebook)` does it in a grading worker; `ctx` (a `WorkerContext`) is
everything the worker holds for the whole batch: the batch's setup (`batch_setup`), its slot
(folder, GPU), its leased sandbox uid and memory cgroup, and the notebooks and secrets read once. The
sandboxes come from a zygote (`serving`). `grade_alone` grades one submission without a master
course (Gradescope); `batch.py` grades a class.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .. import REPO
from .. import notebooks as nbs
from ..config import Assignment, load_course
from . import codescan, cpus, execute, gradebook, intake, layout, plan, repair, sandbox, verify, zygote
from .results import CheckResult, Status, StudentResult

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


@dataclass(frozen=True)
class WorkerContext:
    """A grading worker's fixed resources and what it read once for the batch."""

    setup: BatchSetup
    slot: int                              # its place in the batch (its folder, its GPU)
    folder: Path                           # its scratch folder (kernelspec, runtime files)
    cgroup: str | None                     # its memory cgroup, None where there are none
    lease: sandbox.UidLease | None         # its sandbox's uid, where the grader is root
    source: nbformat.NotebookNode          # the instructor's notebook, hidden tests included
    release: nbformat.NotebookNode         # the students' notebook (repair's reference)
    secrets: frozenset[str]                # solution and hidden-test lines: scrubbed from messages
    libraries: frozenset[str]              # names the instructor's code imports (static review)


def worker_context(setup: BatchSetup, slot: int, scratch: Path) -> WorkerContext:
    """A worker's context: its folder under `scratch`, its memory cgroup (where there are
    cgroups) and sandbox uid (where the grader is root; the caller releases both, see `release`),
    the notebooks and secrets."""
    a = setup.assignment
    folder = scratch / f"w{slot}"
    folder.mkdir(parents=True, exist_ok=True)
    group = sandbox.memory_cgroup(f"{os.getpid()}-{slot}", int(a.memory_gb * 2**30)) \
        if setup.capabilities.cgroup else None
    lease = sandbox.lease_uid() if setup.capabilities.drop_uid else None
    source = nbs.read(Path(setup.source))
    solution, hidden = nbs.secret_lines(source)
    instructor_code = [c.source for c in source.cells if c.cell_type == "code" and not nbs.is_solution(c)]
    return WorkerContext(setup, slot, folder, group, lease, source,
                         release=nbs.read(layout.notebook(Path(setup.template), "release", a.id)),
                         secrets=frozenset(solution | hidden),
                         libraries=frozenset(codescan.library_names(instructor_code)))


# ---------------------------------------------------------------- the batch's setup and zygote
def batch_setup(a: Assignment, template: Path, work: Path, source_path: Path,
                source_nb: nbformat.NotebookNode, hide: tuple[str, ...]) -> BatchSetup:
    """A batch's setup: its folder `work`/batch (emptied), what the zygote preloads, the sandbox's
    capabilities, the GPUs; `hide` are the folders the sandbox must not see."""
    root = work / "batch"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    preload = tuple(preload_modules(source_nb))
    return BatchSetup(a, str(template), str(root), "", str(source_path), preload, sandbox.capabilities(),
                      threads=1, gpus=gpu_count(), hide=(*hide, str(Path.home())),
                      keep=(sys.prefix, sys.base_prefix, os.environ.get("COURSE_DATA_DIR", "")))


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


@contextmanager
def serving(setup: BatchSetup, threads: int) -> Iterator[tuple[BatchSetup, Path]]:
    """A zygote for the batch in a new scratch folder (first checked reachable by the sandbox's
    uid); yields the setup with the zygote's socket and `threads` math threads per sandbox, and the
    scratch folder. The zygote and the folder are gone afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="ck-"))          # short: unix socket paths
    check_reachable(setup, scratch)
    zyg = zygote.Zygote(list(setup.preload), scratch / "zygote")
    try:
        yield dataclasses.replace(setup, socket_path=zyg.socket_path, threads=threads), scratch
    finally:
        zyg.close()
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def in_this_process(setup: BatchSetup, scratch: Path) -> Iterator[WorkerContext]:
    """This process as the batch's only worker (slot 0); its memory cgroup is released afterwards."""
    ctx = worker_context(setup, 0, scratch)
    try:
        yield ctx
    finally:
        release(ctx)


def release(ctx: WorkerContext) -> None:
    """Give back a worker's memory cgroup and sandbox uid."""
    if ctx.cgroup:
        sandbox.release_cgroup(ctx.cgroup)
    if ctx.lease:
        ctx.lease.release()


def grade_alone(assignment_id: str, submissions: Path, work: Path, source: Path, template: Path,
                limits: dict, hide: tuple[str, ...]) -> tuple[StudentResult, dict[str, float]]:
    """One submission graded without a master course (Gradescope: one container per submission):
    the kernel course `template` is ready-made; returns its result and the points per test cell."""
    a = dataclasses.replace(load_course().assignments[assignment_id], **limits)
    found, skipped = intake.find_submissions(a.id, submissions)
    (student, notebook), = found.items()
    nb, why = intake.precheck(notebook, a.max_upload_mb * 2**20)
    if nb is None:              # malformed: nothing will run, so no zygote (seconds of imports) starts
        result = StudentResult(student, Status.MALFORMED, reason=why)
    else:
        setup = batch_setup(a, template, work, source, nbs.read(source), hide=(*hide, str(REPO)))
        with serving(setup, threads=max(1, cpus.cpu_budget())) as (setup, scratch), \
                in_this_process(setup, scratch) as ctx:
            result = guarded(ctx, student, str(notebook))
    cell_max = gradebook.autograded_points(template, a.id)
    result.max_score = sum(cell_max.values())
    return result, cell_max


# ---------------------------------------------------------------- a worker process of the pool
_POOL_CONTEXT: list[WorkerContext] = []     # this pool process's context, set once by its initializer


def init_pool_worker(slots, setup: BatchSetup, scratch: Path) -> None:
    """ProcessPoolExecutor initializer: take a free slot, build the context; its cgroup and uid
    are released when the process exits."""
    ctx = worker_context(setup, slots.get(), scratch)
    atexit.register(release, ctx)
    _POOL_CONTEXT.append(ctx)


def pool_task(student: str, notebook: str) -> StudentResult:
    """One submission in a pool process, with the context its initializer built."""
    return guarded(_POOL_CONTEXT[0], student, notebook)


# ---------------------------------------------------------------- one submission
def guarded(ctx: WorkerContext, student: str, notebook: str) -> StudentResult:
    """`grade_one`, a failure of the grader itself reported as `Status.GRADER_ERROR`."""
    try:
        return grade_one(ctx, student, notebook)
    except Exception as err:                               # a fault of the grader, not the student
        return StudentResult(student, Status.GRADER_ERROR,
                             reason=f"grader error: {type(err).__name__}: {err}"[:300] + " | " +
                             traceback.format_exc(limit=2)[-300:])


def sandbox_config(ctx: WorkerContext, workdir: Path, writable: tuple[str, ...] = ()) -> sandbox.SandboxConfig:
    """The sandbox of this worker's kernel or verification run, working in `workdir`."""
    setup, slot = ctx.setup, ctx.slot
    caps = setup.capabilities
    return sandbox.SandboxConfig(
        workdir=str(workdir), threads=setup.threads, writable=writable, namespaces=caps.namespaces,
        uid=ctx.lease.uid if ctx.lease else None, cgroup=ctx.cgroup,
        hide=setup.hide, keep=setup.keep,
        memory_bytes=None if ctx.cgroup else int(setup.assignment.memory_gb * 2**30),
        roots=(str(Path(setup.root).parent), str(ctx.folder.parent)),
        gpu=str(slot % setup.gpus) if setup.gpus > 1 else None)   # one GPU: the workers share it


def grade_one(ctx: WorkerContext, student: str, notebook: str) -> StudentResult:
    """One submission, start to finish (except what touches the master course)."""
    setup = ctx.setup
    a, source, release = setup.assignment, ctx.source, ctx.release
    start = time.monotonic()
    nb, why = intake.precheck(Path(notebook), a.max_upload_mb * 2**20)
    if nb is None:
        return StudentResult(student, Status.MALFORMED, reason=why)
    notes = repair.repair(nb, release)
    if not repair.is_of_assignment(nb, source):
        return StudentResult(student, Status.MALFORMED,
                             reason="not a notebook of this assignment (none of its answer cells)")
    flags = static_review(nb, source, ctx.libraries)
    plan.insert_export_cells(nb, source)
    work = Path(setup.root) / student
    execute.working_copy(Path(setup.template), work, a.id, student, nb)
    kernel_dir = work / "kernel"
    kernel_dir.mkdir()
    kernel = execute.run_kernel(work, a.id, student, sandbox_config(ctx, kernel_dir, (str(ctx.folder / "run"),)),
                                setup.socket_path, ctx.folder, a.cell_timeout, a.notebook_timeout)
    if kernel.status == Status.GRADER_ERROR:
        return StudentResult(student, Status.GRADER_ERROR, reason=f"grader error: {kernel.reason}",
                             seconds=round(time.monotonic() - start, 1), kernel_seconds=kernel.seconds)
    verify_dir = work / "verify"
    copy_artefacts(kernel_dir / plan.ARTEFACT_FOLDER, verify_dir / plan.ARTEFACT_FOLDER)
    planned = plan.plan(nb, source)
    verification = verify.verify(zygote.Spawner(setup.socket_path), sandbox_config(ctx, verify_dir),
                                 dict(os.environ), planned, list(setup.preload),
                                 verify.Limits(a.cell_timeout, a.notebook_timeout), ctx.secrets)
    if setup.capabilities.drop_uid:
        if not setup.capabilities.namespaces:          # what the runner left, before its uid runs again
            sandbox.kill_uid(ctx.lease.uid)
        for folder in (kernel_dir, verify_dir):
            sandbox.reclaim(str(folder))
    decision = verify.decide(kernel.status, kernel.passed, verification, flags)
    if kernel.recorded:
        gradebook.record_points(work, a.id, student, decision.cells)
    checks = {c.id: check_result(c, verification.verdicts.get(c.id)) for c in planned if c.kind == "test"}
    reasons = [r for r in [kernel.reason, *decision.reasons] if r]
    if notes:
        reasons.append(f"repaired: {'; '.join(notes)}")
    return StudentResult(
        student, decision.status, score=sum(decision.cells.values()), cells=decision.cells,
        manual=kernel.manual, reason="; ".join(dict.fromkeys(reasons)), review=decision.review,
        checks=checks, seconds=round(time.monotonic() - start, 1), kernel_seconds=kernel.seconds,
        verify_seconds=verification.seconds, recorded=kernel.recorded, work=str(work))


def check_result(cell: plan.PlannedCell, verdict: verify.TestVerdict | None) -> CheckResult:
    """A test cell's result: its verification run verdict, or not run (None)."""
    if verdict is None:
        return CheckResult(passed=False, ran=False, message="", points=cell.points)
    return CheckResult(passed=verdict.passed, ran=True, message=verdict.message, points=cell.points)


def static_review(nb: nbformat.NotebookNode, source: nbformat.NotebookNode, libraries: frozenset[str]) -> list[str]:
    """codescan findings for every cell of student code (answer cells and cells the student added);
    `libraries`: the names the instructor's code imports."""
    owned = {nbs.grade_id(c) for c in source.cells if not nbs.is_solution(c)}
    findings = []
    for cell in nb.cells:
        if cell.cell_type != "code" or nbs.grade_id(cell) in owned:
            continue
        where = nbs.grade_id(cell) or cell.get("id") or "an added cell"
        findings += [f"{where} {f}" for f in codescan.scan(cell.source, libraries)]
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
