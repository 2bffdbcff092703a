"""Grade a batch of submissions with nbgrader: autograde, feedback, grades CSV, per-cell scores.

Each batch runs in its own nbgrader course dir (`autograder/work/<id>` by default): the
assignment is generated there from source/ (so the gradebook holds the hidden tests), the
submissions are copied in, and `nbgrader autograde`, `generate_feedback` and `export` run on it.
Results land in `autograder/results/<id>/`: grades.csv (nbgrader's export), cell_scores.csv,
and feedback/<student>.html (hidden tests removed by coursekit.nbgrader_ext.HideHiddenTests).
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO
from .build import check_ok, nbgrader
from .config import load_course

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class StudentResult:
    student: str
    status: str                       # graded | not graded
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)   # autograded cell -> score
    manual: list[str] = field(default_factory=list)          # cells awaiting a human grade
    reason: str = ""


@dataclass
class GradeReport:
    assignment: str
    out: Path
    results: dict[str, StudentResult]
    cell_max: dict[str, float]        # autograded cells only
    skipped: dict[str, str]           # file name -> why it was not graded


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


def prepare_workspace(assignment_id: str, work: Path, source: Path | None = None) -> None:
    """A fresh nbgrader course dir holding the assignment's source and its gradebook.
    `source` replaces the assignment's source notebook (the grading suite grades prefixes)."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(REPO / "source" / assignment_id, work / "source" / assignment_id)
    if source is not None:
        shutil.copy(source, work / "source" / assignment_id / f"{assignment_id}.ipynb")
    shutil.copy(REPO / "nbgrader_config.py", work / "nbgrader_config.py")
    check_ok(nbgrader("generate_assignment", assignment_id, "--force", cwd=work),
             "nbgrader generate_assignment")


def grade_batch(assignment_id: str, submissions: Path, out: Path | None = None,
                work: Path | None = None, source: Path | None = None) -> GradeReport:
    """Autograde every submission in `submissions`; write grades, cell scores and feedback."""
    assignment = load_course().assignments[assignment_id]
    out = out or REPO / "autograder" / "results" / assignment_id
    work = work or REPO / "autograder" / "work" / assignment_id
    prepare_workspace(assignment_id, work, source)

    found, skipped = find_submissions(assignment_id, submissions)
    for student, notebook in found.items():
        target = work / "submitted" / student / assignment_id / f"{assignment_id}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(notebook, target)

    # autograde exits non-zero when any submission fails; per-student status comes from the gradebook.
    nbgrader("autograde", assignment_id, "--force", f"--Execute.timeout={assignment.cell_timeout}",
             cwd=work)
    nbgrader("generate_feedback", assignment_id, "--force", cwd=work)

    if out.exists():
        shutil.rmtree(out)
    (out / "feedback").mkdir(parents=True)
    check_ok(nbgrader("export", "--to", str((out / "grades.csv").resolve()),
                      "--assignment", assignment_id, cwd=work), "nbgrader export")
    results, cell_max = read_gradebook(assignment_id, work, list(found))
    for student in found:
        html = work / "feedback" / student / assignment_id / f"{assignment_id}.html"
        if html.exists():
            shutil.copy(html, out / "feedback" / f"{student}.html")
    write_cell_scores(out / "cell_scores.csv", results, cell_max)
    return GradeReport(assignment_id, out, results, cell_max, skipped)


def read_gradebook(assignment_id: str, work: Path, students: list[str]):
    from nbgrader.api import Gradebook, MissingEntry

    results, cell_max = {}, {}
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        for student in students:
            try:
                submission = gb.find_submission(assignment_id, student)
            except MissingEntry:
                results[student] = StudentResult(student, "not graded", reason="autograde failed")
                continue
            result = StudentResult(student, "graded")
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.auto_score is None:      # written answers: graded by a person
                        result.manual.append(grade.name)
                        continue
                    result.cells[grade.name] = float(grade.score or 0)
                    cell_max[grade.name] = float(grade.max_score)
            result.score, result.max_score = sum(result.cells.values()), sum(cell_max.values())
            results[student] = result
    return results, cell_max


def write_cell_scores(path: Path, results: dict[str, StudentResult], cell_max: dict[str, float]):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "score", "max_score", *cell_max])
        for r in results.values():
            writer.writerow([r.student, r.status, r.score, r.max_score,
                             *(r.cells.get(cell, "") for cell in cell_max)])


def print_summary(report: GradeReport) -> None:
    cells = list(report.cell_max)
    width = max([7, *(len(s) for s in report.results)])
    print(f"{report.assignment}: {len(report.results)} submissions graded into {report.out}")
    print(f"{'student':<{width}}  {'score':>11}  status")
    for r in report.results.values():
        manual = f" (+ manual: {', '.join(r.manual)})" if r.manual else ""
        print(f"{r.student:<{width}}  {r.score:>5g}/{r.max_score:<5g}  {r.status} {r.reason}{manual}".rstrip())
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    print(f"cells: {', '.join(f'{c} ({report.cell_max[c]:g})' for c in cells)}")
