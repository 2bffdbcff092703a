"""Gradebook: the verification run's points into nbgrader's gradebook, one master gradebook per
assignment, instructors' review decisions, and the grades export that respects them.

A submission that *needs review* keeps its verified points in the gradebook, but
`ReviewAwareCsvExport` (an nbgrader export plugin) leaves its score empty in grades.csv until an
instructor accepts it (the verified points count) or rejects it (0): `coursekit review`.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import nbformat
import nbgrader
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from sqlalchemy.exc import SAWarning
from traitlets import Unicode

from .. import REPO, nbgrader_run
from .. import notebooks as nbs
from ..config import load_course
from . import layout
from .results import Review, Status, shown_score

# nbgrader's own submission bookkeeping warns about SQLAlchemy sessions on every re-grade
warnings.filterwarnings("ignore", category=SAWarning)

REVIEWS = "reviews.json"


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
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_gradebook(), target)


def empty_gradebook() -> Path:
    """The cached empty gradebook of this nbgrader version and course (made once, see `seed`)."""
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
    return cached


def record_points(work: Path, aid: str, student: str, points: dict[str, float]) -> None:
    """The verification run's points replace the kernel's in the working copy's gradebook."""
    with Gradebook(db(work)) as gb:
        submission = gb.find_submission(aid, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is not None and grade.cell_type == "code":
                    grade.auto_score = float(points.get(grade.name, 0.0))
        gb.db.commit()


def merge(course: Path, work: Path, aid: str, student: str) -> list[str]:
    """Copy one working copy's grades into the master gradebook (replacing any earlier submission
    of that student) and its autograded notebook into the master course.

    Hand grades (a score or comment entered in formgrader) survive: a cell graded by hand keeps its
    grade when what it grades is unchanged (a manually graded answer cell: that cell's text; a test
    cell whose points were overridden: every answer cell), so re-grading never erases one. When the
    student changed it, the old hand grade no longer applies: the cell is left to be graded again
    (nbgrader's "needs manual grade") and the returned flags say which, with the old grade."""
    dest = layout.folder(course, "autograded", aid, student)
    new_nb = layout.notebook(work, "autograded", aid, student)
    flags = []
    with Gradebook(db(course)) as master, Gradebook(db(work)) as worker:
        master.update_or_create_student(student)
        hand = hand_grades(master, aid, student)
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
        for (nb_name, cell), old in hand.items():
            before = graded_answer(dest / f"{nb_name}.ipynb", cell)
            if before is not None and before == graded_answer(new_nb.parent / f"{nb_name}.ipynb", cell):
                if old["score"] is not None:
                    grade = master.find_grade(cell, nb_name, aid, student)
                    grade.manual_score, grade.extra_credit = old["score"], old["extra_credit"]
                    grade.needs_manual_grade = False
                if old["comment"] is not None:
                    master.find_comment(cell, nb_name, aid, student).manual_comment = old["comment"]
            elif old["score"] is not None:
                flags.append(f"{cell}: answer changed since it was graded by hand ({old['score']:g} points): "
                             f"grade it again (make formgrade ASSIGNMENT={aid})")
        master.db.commit()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy(new_nb, dest / f"{aid}.ipynb")
    return flags


def hand_grades(gb: Gradebook, aid: str, student: str) -> dict[tuple[str, str], dict]:
    """{(notebook, cell): {"score", "extra_credit", "comment"}} of what a person entered for the
    student's current submission (formgrader's manual score, extra credit and comment)."""
    try:
        submission = gb.find_submission(aid, student)
    except MissingEntry:
        return {}
    hand = {}
    for nb in submission.notebooks:
        comments = {c.name: c.manual_comment for c in nb.comments}
        for g in nb.grades:
            if g.manual_score is not None or comments.get(g.name):
                hand[(nb.name, g.name)] = {"score": g.manual_score, "extra_credit": g.extra_credit,
                                           "comment": comments.get(g.name)}
    return hand


def graded_answer(notebook: Path, cell: str) -> tuple[str, ...] | None:
    """What a grade of `cell` judges in a graded notebook: the cell's own text for an answer cell
    graded by hand, every answer cell's text for a test cell (None: no such notebook or cell)."""
    if not notebook.exists():
        return None
    cells = nbs.cells_by_grade_id(nbformat.read(notebook, as_version=4))
    if cell not in cells:
        return None
    if nbs.is_solution(cells[cell]):
        return (cells[cell].source.strip(),)
    return tuple(c.source.strip() for c in cells.values() if nbs.is_solution(c))


def forget(course: Path, aid: str, student: str) -> None:
    """A new submission that could not be graded replaces the old grade with none."""
    with Gradebook(db(course)) as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(aid, student)
        except MissingEntry:
            pass
    for step in ("autograded", "feedback"):
        shutil.rmtree(layout.folder(course, step, aid, student), ignore_errors=True)
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
        reviews[student] = {"decision": Review.PENDING, "reasons": reasons}
    else:
        reviews.pop(student, None)
    save_reviews(course, reviews)


def record_decision(course: Path, student: str, decision: str, note: str = "") -> dict:
    """Record an instructor's decision on a submission that needs review (reviews.json)."""
    if decision not in (Review.ACCEPTED, Review.REJECTED):
        raise ValueError(f"decision must be '{Review.ACCEPTED}' or '{Review.REJECTED}'")
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
                    decision = reviews.get(student.id, {}).get("decision") or ""
                    row.update(timestamp=submission.timestamp, raw_score=shown_score(decision, submission.score),
                               late_submission_penalty=penalty,
                               score=shown_score(decision, max(0.0, submission.score - penalty)), review=decision)
                rows.append(",".join("" if row[k] is None else str(row[k]) for k in keys))
        Path(self.to or "grades.csv").write_text("\n".join(rows) + "\n")


def export_grades(course: Path, aid: str, dest: Path) -> None:
    """grades.csv of the assignment (nbgrader's export plugin API, reviews respected)."""
    plugin = ReviewAwareCsvExport(to=str(dest), assignment=[aid], reviews_file=str(course / REVIEWS))
    with Gradebook(db(course)) as gb:
        plugin.export(gb)


def graded_cells(course: Path, aid: str) -> list[tuple[str, bool]]:
    """[(cell, graded by hand)] of the assignment's graded cells, in notebook order (the master
    course's source notebook)."""
    nb = nbformat.read(layout.notebook(course, "source", aid), as_version=4)
    return [(nbs.grade_id(c), nbs.is_solution(c)) for c in nb.cells if nbs.nbgrader(c).get("grade")]


def export_cell_scores(course: Path, aid: str, dest: Path, statuses: dict[str, str]) -> None:
    """cell_scores.csv: one row per student of `statuses` ({student: status}), one column per
    graded cell (autograded: the verified points; graded by hand: the points entered in
    formgrader, empty while the cell awaits them)."""
    cells = graded_cells(course, aid)
    with Gradebook(db(course)) as gb, dest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", *(c for c, _ in cells)])
        for student, status in statuses.items():
            try:
                submission = gb.find_submission(aid, student)
            except MissingEntry:
                writer.writerow([student, status, *("" for _ in cells)])
                continue
            grades = {g.name: g for nb in submission.notebooks for g in nb.grades}
            row = []
            for cell, by_hand in cells:
                g = grades.get(cell)
                awaiting = g is None or (g.needs_manual_grade and g.manual_score is None) or \
                    (by_hand and g.manual_score is None)
                row.append("" if awaiting else g.score)
            writer.writerow([student, status, *row])


def export(course: Path, aid: str, out: Path, statuses: dict[str, str]) -> None:
    """grades.csv and cell_scores.csv from the master gradebook, hand grades included (`make
    export`, and the end of every `make grade`), for the students of `statuses` ({student: status})."""
    out.mkdir(parents=True, exist_ok=True)
    export_grades(course, aid, out / "grades.csv")
    export_cell_scores(course, aid, out / "cell_scores.csv", statuses)


def export_with_feedback(course: Path, aid: str, out: Path, statuses: dict[str, str]) -> None:
    """`make export`: grades.csv and cell_scores.csv, and every student's feedback again (hand
    points and comments in it), copied to out/feedback/."""
    export(course, aid, out, statuses)
    nbgrader_run.feedback(course, aid)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    layout.copy_feedback(course, aid, out)
