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

Per submission, in a worker process: `submission.grade_one` (intake check → repair → static
review → kernel run → verification run → decision); then, in this process, one at a time:
gradebook merge, feedback, export. This module is the class level: intake, the worker pool, the
collection into the master course.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .. import REPO, nbgrader_run
from .. import notebooks as nbs
from ..config import load_course
from . import gradebook, intake, layout, report, submission
from .cpus import cpu_budget
from .kernel_course import kernel_course
from .results import GradeReport, Status, StudentResult
from .submission import BatchSetup


# ---------------------------------------------------------------- the batch
class SourceChanged(nbgrader_run.GraderError):
    """The master course was graded with a source notebook whose graded cells were other ones."""


def grade_batch(assignment_id: str, submissions: Path, out: Path | None = None,
                work: Path | None = None, source: Path | None = None,
                jobs: int | None = None, limits: dict | None = None, fresh: bool = False) -> GradeReport:
    """Grade every submission (a folder or an LMS zip); write grades, statuses, feedback.
    `source` replaces the assignment's notebook (the grading suite grades a prefix of it);
    `limits` overrides its course.toml limits (cell_timeout, memory_gb, ...); `fresh` sets the
    master course graded so far aside (`set_aside`) and starts a new one."""
    started = time.monotonic()
    phases: dict[str, float] = {}
    clock = [started]

    def lap(name):
        now = time.monotonic()
        phases[name] = round(now - clock[0], 1)
        clock[0] = now

    a = dataclasses.replace(load_course().assignments[assignment_id], **(limits or {}))
    out = out or layout.results_folder(assignment_id)
    work = work or layout.work_folder(assignment_id)
    jobs = max(1, jobs or cpu_budget())
    source_path = source or a.notebook("source")
    source_nb = nbs.read(source_path)
    template = work / "template"
    shutil.rmtree(template, ignore_errors=True)
    kernel_course(template, a.id, source_nb)
    course = layout.master_course(work)
    if fresh and course.exists():
        set_aside(course)
    if (course / "gradebook.db").exists():      # the master gradebook: refreshed, its grades kept
        refresh_master(course, a.id, source_nb)
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

    setup = submission.batch_setup(a, template, work, source_path, source_nb, hide=(str(REPO), str(work), str(Path.home())))
    results = {student: _collect(course, a.id, student, result)
               for student, result in run_workers(setup, found, jobs)}
    lap("grading")

    cell_max = gradebook.autograded_points(course, a.id)
    for r in results.values():
        r.max_score = sum(cell_max.values())
        if r.recorded:
            gradebook.save_record(course, r.student, report.record(r))
            report.annotate(layout.notebook(course, "autograded", a.id, r.student), report.record(r))
    if any(r.recorded for r in results.values()):
        nbgrader_run.feedback(course, a.id)
    lap("feedback")
    if out.exists():
        shutil.rmtree(out)
    (out / "feedback").mkdir(parents=True)
    layout.copy_feedback(course, a.id, out, results)
    isolation = report.describe_isolation(setup.capabilities, a.cell_timeout, a.notebook_timeout, a.memory_gb)
    lap("export")
    graded = GradeReport(a.id, out, dict(sorted(results.items())), cell_max, skipped,
                         isolation, jobs, round(time.monotonic() - started, 1), phases)
    report.write_tables(graded)
    statuses = {student: r.status for student, r in graded.results.items()}
    gradebook.export(course, a.id, out, statuses)   # grades.csv, cell_scores.csv: hand grades included
    return graded


def refresh_master(course: Path, aid: str, source_nb) -> None:
    """The master course with the current source notebook. nbgrader keeps one set of graded cells
    per gradebook once students are graded in it: a source whose graded cells were added, removed
    or renamed since then is refused (SourceChanged), with what to do."""
    try:
        kernel_course(course, aid, source_nb)
    except nbgrader_run.GraderError as err:
        if "Cannot add or remove cells" not in str(err):
            raise
        raise SourceChanged(
            f"{aid}: the source notebook's graded cells changed since the class was graded in {course} "
            f"(nbgrader keeps one set per gradebook). To grade the whole class again with this version, "
            f"rerun with --fresh (make grade ... FRESH=1): the old course, with its hand grades and "
            f"reviews, is set aside next to it; or grade with the source as it was.") from None


def set_aside(course: Path) -> Path:
    """Move a master course out of the way (`course.before-<UTC time>`), nothing deleted."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = course.with_name(f"{course.name}.before-{stamp}")
    course.rename(target)
    print(f"the course graded so far is set aside in {target} (hand grades and reviews with it)")
    return target


def run_workers(setup: BatchSetup, found: dict[str, Path], jobs: int):
    """Grade `found` ({student: notebook}) in `jobs` worker processes; yields (student, result) as
    they finish. One zygote serves them all and is gone afterwards."""
    jobs = max(1, min(jobs, len(found) or 1))
    with submission.serving(setup, threads=max(1, cpu_budget() // jobs)) as (setup, scratch):
        if jobs == 1:
            with submission.in_this_process(setup, scratch) as ctx:
                for student, notebook in found.items():
                    yield student, submission.guarded(ctx, student, str(notebook))
            return
        spawn = multiprocessing.get_context("spawn")
        slots = spawn.Queue()
        for slot in range(jobs):
            slots.put(slot)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, initializer=submission.init_pool_worker,
                                 initargs=(slots, setup, scratch)) as pool:
            futures = {pool.submit(submission.pool_task, s, str(p)): s for s, p in found.items()}
            for future in as_completed(futures):
                student = futures[future]
                try:
                    yield student, future.result()
                except Exception as err:                   # a worker died: the grader's fault
                    yield student, StudentResult(student, Status.GRADER_ERROR, reason=f"grader error: {err}")


def _collect(course: Path, aid: str, student: str, result: StudentResult) -> StudentResult:
    """Into the master course, one at a time: merge (or forget) and the review state."""
    if result.recorded and result.work:
        flags = gradebook.merge(course, Path(result.work), aid, student)
        if flags:
            result.reason = "; ".join([*filter(None, [result.reason]), *flags])
    else:
        gradebook.forget(course, aid, student)
    gradebook.set_pending(course, student, result.review if result.status == Status.NEEDS_REVIEW else None)
    return result
