"""Gradebook: the verification run's points into nbgrader's gradebook, one master gradebook per
assignment, instructors' review decisions, and the grades export that respects them.

A submission that *needs review* keeps its verified points in the gradebook, but
`ReviewAwareCsvExport` (an nbgrader export plugin) leaves its score empty in grades.csv until an
instructor accepts it (the verified points count) or rejects it (0): `coursekit review`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import nbgrader
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from sqlalchemy.exc import SAWarning
from traitlets import Unicode

from .. import REPO, nbgrader_run
from ..config import load_course

# nbgrader's own submission bookkeeping warns about SQLAlchemy sessions on every re-grade
warnings.filterwarnings("ignore", category=SAWarning)

REVIEWS = "reviews.json"
DECISIONS = ("pending", "accepted", "rejected")


def db(course: Path) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def seed(folder: Path) -> None:
    """Give a course folder that has no gradebook an empty one: nbgrader's tables, its schema
    version and the course, copied from one that nbgrader's `Gradebook` made once per nbgrader
    version and course (`.build/empty-gradebook/`). nbgrader makes every new gradebook by running
    the `alembic` command to learn its schema version, a new interpreter each time: 5 s on a slow
    2-core machine, for every prefix the grading suite grades and every freshness check."""
    target = folder / "gradebook.db"
    if target.exists():
        return
    course_id = load_course().id
    cached = REPO / ".build" / "empty-gradebook" / f"nbgrader-{nbgrader.__version__}-{course_id}" / "gradebook.db"
    if not cached.exists():
        cached.parent.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cached.parent.parent))
        nbgrader_run.alembic_on_path()
        Gradebook(db(staging), course_id=course_id).close()
        try:
            staging.rename(cached.parent)
        except OSError:                               # another process made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)


def record_points(work: Path, aid: str, student: str, points: dict[str, float]) -> None:
    """The verification run's points replace the kernel's in the working copy's gradebook."""
    with Gradebook(db(work)) as gb:
        submission = gb.find_submission(aid, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is not None and grade.cell_type == "code":
                    grade.auto_score = float(points.get(grade.name, 0.0))
        gb.db.commit()


def merge(course: Path, work: Path, aid: str, student: str) -> None:
    """Copy one working copy's grades into the master gradebook (replacing any earlier submission
    of that student) and its autograded notebook into the master course."""
    with Gradebook(db(course)) as master, Gradebook(db(work)) as worker:
        master.update_or_create_student(student)
        try:
            master.remove_submission(aid, student)
        except MissingEntry:
            pass
        theirs = worker.find_submission(aid, student)
        master.add_submission(aid, student, timestamp=theirs.timestamp)
        for nb in theirs.notebooks:
            for g in nb.grades:
                grade = master.find_grade(g.name, nb.name, aid, student)
                grade.auto_score, grade.needs_manual_grade = g.auto_score, g.needs_manual_grade
            for c in nb.comments:
                comment = master.find_comment(c.name, nb.name, aid, student)
                comment.auto_comment = c.auto_comment
        master.db.commit()
    dest = course / "autograded" / student / aid
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy(work / "autograded" / student / aid / f"{aid}.ipynb", dest / f"{aid}.ipynb")


def forget(course: Path, aid: str, student: str) -> None:
    """A new submission that could not be graded replaces the old grade with none."""
    with Gradebook(db(course)) as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(aid, student)
        except MissingEntry:
            pass
    for step in ("autograded", "feedback"):
        shutil.rmtree(course / step / student / aid, ignore_errors=True)
    (course / "records" / f"{student}.json").unlink(missing_ok=True)


def autograded_points(course: Path, aid: str) -> dict[str, float]:
    """{test cell: points} for the assignment's autograded cells."""
    with Gradebook(db(course)) as gb:
        assignment = gb.find_assignment(aid)
        return {cell.name: float(cell.max_score) for nb in assignment.notebooks
                for cell in nb.grade_cells if cell.cell_type == "code"}


def save_record(course: Path, student: str, info: dict) -> None:
    """The grader's record of a student's last grading (status, verified checks), for feedback."""
    (course / "records").mkdir(exist_ok=True)
    (course / "records" / f"{student}.json").write_text(json.dumps(info, indent=1))


def load_record(course: Path, student: str) -> dict | None:
    path = course / "records" / f"{student}.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- reviews
def load_reviews(course: Path) -> dict[str, dict]:
    path = course / REVIEWS
    return json.loads(path.read_text()) if path.exists() else {}


def save_reviews(course: Path, reviews: dict[str, dict]) -> None:
    (course / REVIEWS).write_text(json.dumps(reviews, indent=1, sort_keys=True) + "\n")


def set_pending(course: Path, student: str, reasons: list[str] | None) -> None:
    """A new grading of `student`: pending review with `reasons`, or no review at all."""
    reviews = load_reviews(course)
    if reasons:
        reviews[student] = {"decision": "pending", "reasons": reasons}
    else:
        reviews.pop(student, None)
    save_reviews(course, reviews)


def decide(course: Path, student: str, decision: str, note: str = "") -> dict:
    """An instructor's decision on a submission that needs review."""
    if decision not in ("accepted", "rejected"):
        raise ValueError("decision must be 'accepted' or 'rejected'")
    reviews = load_reviews(course)
    if student not in reviews:
        raise KeyError(f"{student} has no submission that needs review")
    reviews[student].update(decision=decision, note=note)
    save_reviews(course, reviews)
    return reviews[student]


class ReviewAwareCsvExport(ExportPlugin):
    """nbgrader's CSV export, plus a `review` column; a pending review leaves the score empty and
    a rejected one scores 0."""

    reviews_file = Unicode("", help="reviews.json of the course").tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        reviews = json.loads(Path(self.reviews_file).read_text()) if self.reviews_file and \
            Path(self.reviews_file).exists() else {}
        keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                "raw_score", "late_submission_penalty", "score", "max_score", "review"]
        rows = [",".join(keys)]
        for assignment in gradebook.assignments:
            if self.assignment and assignment.name not in self.assignment:
                continue
            for student in gradebook.students:
                if self.student and student.id not in self.student:
                    continue
                row = {"assignment": assignment.name, "duedate": assignment.duedate, "student_id": student.id,
                       "last_name": student.last_name, "first_name": student.first_name,
                       "email": student.email, "max_score": assignment.max_score, "review": ""}
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0)
                else:
                    penalty = submission.late_submission_penalty or 0.0
                    row.update(timestamp=submission.timestamp, raw_score=submission.score,
                               late_submission_penalty=penalty, score=max(0.0, submission.score - penalty))
                    decision = reviews.get(student.id, {}).get("decision")
                    row["review"] = decision or ""
                    if decision == "pending":
                        row.update(raw_score="", score="")
                    elif decision == "rejected":
                        row.update(raw_score=0.0, score=0.0)
                rows.append(",".join("" if row[k] is None else str(row[k]) for k in keys))
        Path(self.to or "grades.csv").write_text("\n".join(rows) + "\n")


def export_grades(course: Path, aid: str, dest: Path) -> None:
    """grades.csv of the assignment (nbgrader's export plugin API, reviews respected)."""
    plugin = ReviewAwareCsvExport(to=str(dest), assignment=[aid], reviews_file=str(course / REVIEWS))
    with Gradebook(db(course)) as gb:
        plugin.export(gb)
