"""Where grading keeps things: the kit's folders under `autograder/` (`work/<id>/`, with the master
course in `course/`, and `results/<id>/`), and, inside a course folder, nbgrader's layout
`<step>/<student>/<id>/<id>.ipynb` (`source/` and `release/` without a student), spelled by
nbgrader's own `CourseDirectory.format_path`."""

from __future__ import annotations

import shutil
from pathlib import Path

from nbgrader.coursedir import CourseDirectory

from .. import REPO

WORK = REPO / "autograder" / "work"          # scratch: kernel courses, master courses, working copies
RESULTS = REPO / "autograder" / "results"    # what a batch produces for the instructor


def work_folder(aid: str) -> Path:
    """`autograder/work/<id>/`: the assignment's grading folder."""
    return WORK / aid


def results_folder(aid: str) -> Path:
    """`autograder/results/<id>/`: grades.csv, status.csv, cell_scores.csv, feedback/."""
    return RESULTS / aid


def master_course(work: Path) -> Path:
    """The master nbgrader course of a grading folder (its gradebook holds every student graded)."""
    return work / "course"


def folder(course: Path, step: str, aid: str, student: str = ".") -> Path:
    """nbgrader's folder of the assignment at `step` (source, release, submitted, autograded,
    feedback) in the course folder `course`; `student` "*" makes it a glob pattern."""
    return Path(CourseDirectory(root=str(course)).format_path(step, student, aid))


def notebook(course: Path, step: str, aid: str, student: str = ".") -> Path:
    """The assignment's notebook at `step` (nbgrader's `<step>/<student>/<id>/<id>.ipynb`)."""
    return folder(course, step, aid, student) / f"{aid}.ipynb"


def feedback_page(course: Path, aid: str, student: str) -> Path:
    """nbgrader's feedback page of a student (`feedback/<student>/<id>/<id>.html`)."""
    return folder(course, "feedback", aid, student) / f"{aid}.html"


def by_student(course: Path, step: str, aid: str, suffix: str = ".ipynb") -> dict[str, Path]:
    """{student: file} of every student's `<step>/<student>/<id>/<id><suffix>` in the course."""
    pattern = (folder(course, step, aid, "*") / f"{aid}{suffix}").relative_to(Path(course).absolute())
    return {path.parent.parent.name: path for path in Path(course).absolute().glob(str(pattern))}


def copy_feedback(course: Path, aid: str, out: Path, students=None) -> None:
    """Copy students' feedback pages to `out`/feedback/<student>.html: those of `students`, or
    every page the course has (None); a student without a page is left out."""
    pages = by_student(course, "feedback", aid, ".html") if students is None else \
        {student: feedback_page(course, aid, student) for student in students}
    for student, page in pages.items():
        if page.exists():
            (out / "feedback").mkdir(parents=True, exist_ok=True)
            shutil.copy(page, out / "feedback" / f"{student}.html")
