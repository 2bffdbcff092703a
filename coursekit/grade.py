"""Grade a class with nbgrader: parallel, sandboxed, one gradebook, honest feedback.

Layout under `autograder/work/<id>/` (scratch, not committed):
    course/     the master nbgrader course dir: gradebook.db with every graded student, autograded/,
                feedback/; kept between runs, so a re-submission replaces that student's old grade
    template/   a clean course dir (assignment generated from source/) copied for each submission
    batch/<s>/  one working copy per submission: nbgrader autograde runs there, as the instructor,
                and starts the student's kernel in the sandbox (coursekit.sandbox)
Results go to `autograder/results/<id>/`: grades.csv (nbgrader export), status.csv (this batch:
status and reason per student), cell_scores.csv and feedback/<student>.html.

Statuses: graded; timed out (a cell hit the per-cell limit or the notebook its wall time);
crashed (the kernel died, e.g. a segfault or the memory cap); malformed (not a readable notebook of
this assignment: empty, invalid JSON, too large, another assignment's notebook).
"""

from __future__ import annotations

import ast
import copy
import csv
import dataclasses
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import REPO, sandbox
from . import notebooks as nbs
from .build import check_ok, nbgrader
from .config import Assignment, load_course

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STATUSES = ("graded", "timed out", "crashed", "malformed")
SANDBOX_UID = 61000           # the kernels run as uid SANDBOX_UID + worker slot
AST_LOCK = threading.Lock()
KERNEL_DIED = "the kernel died (crash, exit or memory cap)"


@dataclass
class StudentResult:
    student: str
    status: str                                             # one of STATUSES
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)   # autograded cell -> score
    manual: list[str] = field(default_factory=list)          # cells awaiting a human grade
    reason: str = ""
    seconds: float = 0.0
    recorded: bool = False        # the working copy's gradebook holds this submission


@dataclass
class GradeReport:
    assignment: str
    out: Path
    results: dict[str, StudentResult]
    cell_max: dict[str, float]        # autograded cells only
    skipped: dict[str, str]           # file name -> why it was not graded
    isolation: str = ""
    jobs: int = 1
    seconds: float = 0.0


# ---------------------------------------------------------------- intake
def find_submissions(assignment_id: str, folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """{student: notebook} from `<folder>/<student>.ipynb` or `<folder>/<student>/<id>.ipynb`."""
    found, skipped = {}, {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            notebook, student = path / f"{assignment_id}.ipynb", path.name
            if not notebook.exists():
                skipped[path.name] = f"no {assignment_id}.ipynb inside"
                continue
        elif path.suffix == ".ipynb":
            notebook, student = path, path.stem
        else:
            skipped[path.name] = "not a notebook"
            continue
        if not STUDENT_ID.match(student):
            skipped[path.name] = "name is not a usable student id"
        elif student in found:
            skipped[path.name] = f"second submission for {student}"
        else:
            found[student] = notebook
    return found, skipped


def collect_zip(assignment_id: str, archive: Path, course: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """An LMS export: nbgrader zip_collect maps file names to student ids (course.toml's
    `submission_filename` regexp); files it cannot map are reported as skipped."""
    pattern = load_course().submission_filename
    downloaded = course / "downloaded" / assignment_id
    shutil.rmtree(downloaded, ignore_errors=True)
    shutil.rmtree(course / "submitted", ignore_errors=True)
    (downloaded / "archive").mkdir(parents=True)
    shutil.copy(archive, downloaded / "archive" / archive.name)
    check_ok(nbgrader("zip_collect", assignment_id, "--force",
                      f"--FileNameCollectorPlugin.named_regexp={pattern}", cwd=course),
             "nbgrader zip_collect")
    found = {p.parent.parent.name: p
             for p in (course / "submitted").glob(f"*/{assignment_id}/{assignment_id}.ipynb")}
    names = re.compile(pattern)
    skipped = {}
    for path in sorted((downloaded / "extracted").rglob("*")):
        if path.is_file():
            m = names.match(str(path))
            if not m or m.group("student_id") not in found:
                skipped[path.name] = ("file name does not match submission_filename"
                                      if not m else "not collected by nbgrader zip_collect")
    return found, skipped


def precheck(path: Path, max_bytes: int) -> tuple[nbformat.NotebookNode | None, str]:
    """(notebook, "") or (None, why it cannot be graded at all: malformed)."""
    size = path.stat().st_size
    if size == 0:
        return None, "empty file"
    if size > max_bytes:
        return None, f"file too large ({size / 2**20:.0f} MB > {max_bytes / 2**20:.0f} MB)"
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:                     # any parse or schema error: report, don't crash
        return None, f"not a valid notebook ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    return nb, ""


def repair(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Mend what nbgrader cannot grade around, using the release's stable cell ids:
    cleared nbgrader metadata, duplicated graded cells, deleted test or read-only cells.
    Returns what was repaired (shown in the status reason)."""
    notes = []
    released = nbs.cells_by_grade_id(release)
    restored = 0
    for cell in nb.cells:
        twin = released.get(cell.get("id"))
        if not nbs.grade_id(cell) and twin is not None and twin.cell_type == cell.cell_type:
            cell.metadata["nbgrader"] = copy.deepcopy(twin.metadata["nbgrader"])
            restored += 1
    if restored:
        notes.append(f"nbgrader metadata of {restored} cells restored from their ids")
    seen = set()
    for cell in nb.cells:
        gid = nbs.grade_id(cell)
        if gid in seen:
            cell.metadata.pop("nbgrader")
            notes.append(f"a copy of {gid} kept as a plain cell")
        elif gid:
            seen.add(gid)
    for index, cell in enumerate(release.cells):
        gid = nbs.grade_id(cell)
        if gid and gid not in seen and nbs.nbgrader(cell).get("locked"):
            before = {nbs.grade_id(c) for c in release.cells[:index]}
            at = max([i + 1 for i, c in enumerate(nb.cells) if nbs.grade_id(c) in before], default=0)
            restored_cell = copy.deepcopy(cell)
            if restored_cell.id in {c.get("id") for c in nb.cells}:
                restored_cell.id = f"{gid}-restored"
            nb.cells.insert(at, restored_cell)
            seen.add(gid)
            notes.append(f"deleted cell {gid} restored")
    return notes


TAMPER_TARGETS = {"torch", "np", "numpy", "nn", "F", "torchvision", "builtins", "sklearn", "math"}


def tampering(nb: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """Student code that patches libraries or redefines names the test cells define: such a
    submission is graded as usual and flagged for a human to look at."""
    test_names = set()
    for cell in source.cells:
        if nbs.is_test(cell):
            try:
                tree = ast.parse(nbs.without_hidden_tests(cell.source))
            except SyntaxError:
                continue
            test_names |= module_level_definitions(tree)
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not nbs.is_solution(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for t in targets:
                base = t
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(t, ast.Attribute) and isinstance(base, ast.Name) and base.id in TAMPER_TARGETS:
                    found.append(f"assigns {ast.unparse(t)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("setattr", "delattr") and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in TAMPER_TARGETS):
                found.append(f"calls {node.func.id} on {node.args[0].id}")
        found += [f"redefines {name}, which the checks use"
                  for name in sorted(module_level_definitions(tree) & test_names)]
    return sorted(set(found))


def module_level_definitions(tree: ast.Module) -> set[str]:
    """Names of the functions and classes a cell defines at module level (also inside if/try/with),
    not the methods of its classes: only those can replace a check's helper."""
    names, statements = set(), list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        else:
            statements += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    return names


# ---------------------------------------------------------------- workspaces
def course_dir(folder: Path, assignment_id: str, source: Path | None = None) -> Path:
    """Create or refresh an nbgrader course dir holding this assignment (gradebook kept).
    `source` replaces the assignment's notebook (the grading suite grades a prefix of it)."""
    (folder / "source").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "source" / assignment_id, ignore_errors=True)
    shutil.copytree(REPO / "source" / assignment_id, folder / "source" / assignment_id)
    if source is not None:
        shutil.copy(source, folder / "source" / assignment_id / f"{assignment_id}.ipynb")
    shutil.copy(REPO / "nbgrader_config.py", folder / "nbgrader_config.py")
    check_ok(nbgrader("generate_assignment", assignment_id, "--force", cwd=folder),
             "nbgrader generate_assignment")
    return folder


@dataclass
class Batch:
    assignment: Assignment
    template: Path
    root: Path
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode
    namespaces: bool
    drop_uid: bool
    threads: int
    slots: queue.Queue
    gpus: int = 0


def grade_one(batch: Batch, student: str, notebook: Path) -> tuple[StudentResult, Path | None]:
    """Autograde one submission in its own working copy; returns the result and that copy."""
    a = batch.assignment
    start = time.monotonic()
    nb, reason = precheck(notebook, a.max_upload_mb * 2**20)
    if nb is None:
        return StudentResult(student, "malformed", reason=reason), None
    notes = repair(nb, batch.release)
    if not {nbs.grade_id(c) for c in nb.cells} & set(nbs.reference_answers(batch.source)):
        return StudentResult(student, "malformed",
                             reason="not a notebook of this assignment (none of its answer cells)"), None
    with AST_LOCK:           # CPython 3.11's ast is not thread-safe ("recursion depth mismatch")
        flags = tampering(nb, batch.source)
    slot = batch.slots.get()
    try:
        work = batch.root / student
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(batch.template, work, ignore=shutil.ignore_patterns("release", ".nbgrader.log"))
        target = work / "submitted" / student / a.id / f"{a.id}.ipynb"
        target.parent.mkdir(parents=True)
        nbs.write(nb, target)
        # connection file and kernel sockets: a short path (unix sockets allow ~100 characters)
        runtime = Path(tempfile.mkdtemp(prefix="ck-"))
        group = sandbox.memory_cgroup(f"{os.getpid()}-{slot}", int(a.memory_gb * 2**30))
        config = {"namespaces": batch.namespaces, "threads": batch.threads,
                  "uid": SANDBOX_UID + slot if batch.drop_uid else None,
                  "cgroup": group, "max_processes": 512,
                  "max_file_bytes": 256 * 2**20, "runtime_dir": str(runtime),
                  # the course repo, the other submissions and your home stay out of sight
                  "hide": [str(REPO), str(batch.root.parent), str(Path.home())],
                  "keep": [sys.prefix, sys.base_prefix, os.environ.get("COURSE_DATA_DIR", "")]}
        jupyter = sandbox.kernelspec(work / "jupyter", config, batch.namespaces)
        env = {**os.environ, "JUPYTER_PATH": str(jupyter), "JUPYTER_RUNTIME_DIR": str(runtime),
               **{var: str(batch.threads) for var in sandbox.THREAD_VARS}}
        if batch.gpus > 1:            # several GPUs: one per worker; one GPU: the workers share it
            env["CUDA_VISIBLE_DEVICES"] = str(slot % batch.gpus)
        bindir = Path(sys.executable).parent
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        cmd = [str(bindir / "nbgrader"), "autograde", a.id, "--student", student, "--force",
               f"--Execute.timeout={a.cell_timeout}", f"--Execute.kernel_name={sandbox.KERNEL_NAME}",
               # unix sockets at an absolute path: they work across the network namespace
               "--KernelManager.transport=ipc", f"--KernelManager.ip={runtime / 'k'}"]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=a.notebook_timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)      # nbgrader, unshare and so the whole sandbox
            log, _ = proc.communicate()
            timed_out = True
        if group:
            sandbox.release_cgroup(group)
        shutil.rmtree(runtime, ignore_errors=True)
        (work / "autograde.log").write_text(log or "")
        result = read_result(work, a.id, student, log or "", timed_out, a)
        result.seconds = round(time.monotonic() - start, 1)
        extra = ([f"repaired: {'; '.join(notes)}"] if notes else []) + (
            [f"flagged for review: {'; '.join(flags)}"] if flags else [])
        result.reason = "; ".join([r for r in [result.reason, *extra] if r])
        return result, work
    finally:
        batch.slots.put(slot)


def read_result(work: Path, aid: str, student: str, log: str, timed_out: bool,
                a: Assignment) -> StudentResult:
    """Status and points of one working copy, from its gradebook and autograded notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    if timed_out:
        return StudentResult(student, "timed out",
                             reason=f"notebook ran past its {a.notebook_timeout} s limit")
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        try:
            submission = gb.find_submission(aid, student)
        except MissingEntry:
            status, reason = failure(log, a)
            return StudentResult(student, status, reason=reason)
        executed = work / "autograded" / student / aid / f"{aid}.ipynb"
        if not executed.exists():                   # nbgrader gave up on it
            status, reason = failure(log, a)
            return StudentResult(student, status, reason=reason)
        result = StudentResult(student, "graded", recorded=True)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is None:           # written answers: graded by a person
                    result.manual.append(grade.name)
                    continue
                result.cells[grade.name] = float(grade.score or 0)
        result.score = sum(result.cells.values())
    errors = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
              for o in c.outputs if o.get("output_type") == "error"]
    names = {o.get("ename") for o in errors}
    if "CellTimeoutError" in names or "CellTimeoutError" in log:
        result.status, result.reason = "timed out", f"a cell ran past {a.cell_timeout} s"
    elif "DeadKernelError" in names or "DeadKernelError" in log or "kernel died" in log.lower():
        result.status, result.reason = "crashed", KERNEL_DIED
    return result


def failure(log: str, a: Assignment) -> tuple[str, str]:
    """Status of a submission nbgrader could not grade, read from its log."""
    if "CellTimeoutError" in log or "timed out" in log:
        return "timed out", f"a cell ran past {a.cell_timeout} s and could not be interrupted"
    if "DeadKernelError" in log or "Kernel died" in log:
        return "crashed", KERNEL_DIED
    lines = [line.strip() for line in log.splitlines() if "Error" in line and "|" not in line]
    return "crashed", (lines[-1][:200] if lines else "nbgrader autograde failed")


def merge(course: Path, work: Path, aid: str, student: str) -> None:
    """Copy one working copy's autograde results into the master gradebook (replacing any
    earlier submission of that student) and its autograded notebook into the master course."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)   # nbgrader's own add_submission warns
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as master, \
            Gradebook(f"sqlite:///{work / 'gradebook.db'}") as worker:
        master.update_or_create_student(student)
        try:
            master.remove_submission(aid, student)
        except MissingEntry:
            pass
        theirs = worker.find_submission(aid, student)
        ours = master.add_submission(aid, student, timestamp=theirs.timestamp)
        for nb in theirs.notebooks:
            for g in nb.grades:
                grade = master.find_grade(g.name, nb.name, aid, student)
                grade.auto_score, grade.needs_manual_grade = g.auto_score, g.needs_manual_grade
            for c in nb.comments:
                comment = master.find_comment(c.name, nb.name, aid, student)
                comment.auto_comment = c.auto_comment
        master.db.commit()
        del ours
    dest = course / "autograded" / student / aid
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(work / "autograded" / student / aid, dest)


def forget(course: Path, aid: str, student: str) -> None:
    """A new submission that could not be graded replaces the old grade with none."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(aid, student)
        except MissingEntry:
            pass
    shutil.rmtree(course / "autograded" / student / aid, ignore_errors=True)
    shutil.rmtree(course / "feedback" / student / aid, ignore_errors=True)


# ---------------------------------------------------------------- the batch
def grade_batch(assignment_id: str, submissions: Path, out: Path | None = None,
                work: Path | None = None, source: Path | None = None,
                jobs: int | None = None, limits: dict | None = None) -> GradeReport:
    """Autograde every submission (a folder or an LMS zip); write grades, statuses, feedback.
    `limits` overrides the assignment's course.toml limits (cell_timeout, memory_gb, ...)."""
    started = time.monotonic()
    a = dataclasses.replace(load_course().assignments[assignment_id], **(limits or {}))
    out = out or REPO / "autograder" / "results" / assignment_id
    work = work or REPO / "autograder" / "work" / assignment_id
    jobs = max(1, jobs or os.cpu_count() or 1)
    template = work / "template"
    shutil.rmtree(template, ignore_errors=True)
    course_dir(template, assignment_id, source)
    course = work / "course"
    if (course / "gradebook.db").exists():      # the master gradebook: refreshed, its grades kept
        course_dir(course, assignment_id, source)
    else:                                        # a new one: the template as it is (saves a generate)
        shutil.copytree(template, course)

    if zipfile.is_zipfile(submissions):
        found, skipped = collect_zip(assignment_id, submissions, course)
    else:
        found, skipped = find_submissions(assignment_id, submissions)

    caps = sandbox.capabilities()
    slots: queue.Queue = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    batch_root = work / "batch"
    shutil.rmtree(batch_root, ignore_errors=True)
    batch_root.mkdir(parents=True)
    batch = Batch(a, template, batch_root, nbs.read(template / "source" / a.id / f"{a.id}.ipynb"),
                  nbs.read(template / "release" / a.id / f"{a.id}.ipynb"),
                  caps["namespaces"], caps["drop_uid"],
                  threads=max(1, (os.cpu_count() or 1) // jobs), slots=slots, gpus=gpu_count())

    results: dict[str, StudentResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_one, batch, student, nb): student for student, nb in found.items()}
        for future in as_completed(futures):
            student = futures[future]
            try:
                result, copy = future.result()
            except Exception as err:                 # one broken submission never stops a batch
                result, copy = StudentResult(student, "crashed", reason=f"grader error: {err}"), None
            if copy is not None and result.recorded:
                merge(course, copy, a.id, student)
            else:
                forget(course, a.id, student)
            results[student] = result

    cell_max = autograded_points(course, a.id)
    for r in results.values():
        r.max_score = sum(cell_max.values())
    nbgrader("generate_feedback", a.id, "--force", cwd=course)
    if out.exists():
        shutil.rmtree(out)
    (out / "feedback").mkdir(parents=True)
    check_ok(nbgrader("export", "--to", str((out / "grades.csv").resolve()),
                      "--assignment", a.id, cwd=course), "nbgrader export")
    for student in results:
        html = course / "feedback" / student / a.id / f"{a.id}.html"
        if html.exists():
            shutil.copy(html, out / "feedback" / f"{student}.html")
    isolation = describe_isolation(caps, a)
    report = GradeReport(a.id, out, dict(sorted(results.items())), cell_max, skipped,
                         isolation, jobs, round(time.monotonic() - started, 1))
    write_tables(report)
    return report


def gpu_count() -> int:
    """NVIDIA GPUs on this machine (0 without a driver)."""
    if not shutil.which("nvidia-smi"):
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def autograded_points(course: Path, aid: str) -> dict[str, float]:
    """{test cell: points} for the assignment's autograded cells, from the master gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(aid)
        return {cell.name: float(cell.max_score) for nb in assignment.notebooks
                for cell in nb.grade_cells if cell.cell_type == "code"}


def describe_isolation(caps: dict, a: Assignment) -> str:
    parts = [f"per cell {a.cell_timeout} s, per notebook {a.notebook_timeout} s",
             f"memory cap {a.memory_gb:g} GiB (cgroup)" if caps["cgroup"] else
             "NO memory cap: memory cgroups are not writable on this machine"]
    if caps["namespaces"]:
        parts.append("no network (own network namespace), own PID and mount namespace "
                     "(course files hidden)")
    else:
        parts.append("NO network isolation and course files NOT hidden: `unshare` is not "
                     "permitted on this machine (run as root for full isolation)")
    parts.append("kernel as an unprivileged uid" if caps["drop_uid"] else "kernel as your own user")
    return "; ".join(parts)


def write_tables(report: GradeReport) -> None:
    with (report.out / "status.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "score", "max_score", "seconds", "reason"])
        for r in report.results.values():
            writer.writerow([r.student, r.status, r.score, r.max_score, r.seconds, r.reason])
        for name, why in report.skipped.items():
            writer.writerow([name, "skipped", "", "", "", why])
    with (report.out / "cell_scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", *report.cell_max])
        for r in report.results.values():
            writer.writerow([r.student, r.status, *(r.cells.get(c, "") for c in report.cell_max)])


def print_summary(report: GradeReport) -> None:
    width = max([7, *(len(s) for s in report.results)])
    print(f"{report.assignment}: {len(report.results)} submissions, {report.jobs} workers, "
          f"{report.seconds:g} s -> {report.out}")
    print(f"{'student':<{width}}  {'score':>11}  status")
    for r in report.results.values():
        manual = f" (+ manual: {', '.join(r.manual)})" if r.manual else ""
        reason = f": {r.reason}" if r.reason else ""
        print(f"{r.student:<{width}}  {r.score:>5g}/{r.max_score:<5g}  {r.status}{reason}{manual}")
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    counts = {s: sum(r.status == s for r in report.results.values()) for s in STATUSES}
    print("statuses: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f", {len(report.skipped)} skipped")
    print(f"limits: {report.isolation}")
