"""`coursekit review`: an instructor's decision on submissions that need review.

Listing shows each pending submission with its verified score and the reasons; accepting one
makes its verified points count, rejecting it scores it 0. Either way grades.csv, status.csv and
that student's feedback are brought up to date.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .. import nbgrader_run
from . import gradebook, layout, report
from .results import Review, Status


def main(assignment_id: str, student: str | None, decision: str | None, note: str = "",
         out: Path | None = None, work: Path | None = None) -> int:
    course = layout.master_course(work or layout.work_folder(assignment_id))
    out = out or layout.results_folder(assignment_id)
    if not (course / "gradebook.db").exists():
        print(f"no graded batch of {assignment_id} yet: run `make grade ASSIGNMENT={assignment_id}` first")
        return 2
    reviews = gradebook.load_reviews(course)
    if student is None or decision is None:
        pending = {s: r for s, r in reviews.items() if student in (None, s)}
        if not pending:
            print(f"{assignment_id}: no submission needs review")
        for name, review in sorted(pending.items()):
            print(f"{name} [{review['decision']}]" + (f" note: {review['note']}" if review.get("note") else ""))
            for reason in review["reasons"]:
                print(f"   - {reason}")
        if any(r["decision"] == Review.PENDING for r in pending.values()):
            print(f"decide with: coursekit review {assignment_id} STUDENT --accept|--reject [--note TEXT] "
                  f"(make review ASSIGNMENT={assignment_id} STUDENT=... DECISION=accept|reject)")
        return 0
    try:
        gradebook.record_decision(course, student, decision, note)
    except KeyError as err:
        print(err.args[0])
        return 2
    refresh(course, assignment_id, student, out, decision)
    print(f"{student}: {decision}; {out / 'grades.csv'} updated")
    return 0


def refresh(course: Path, aid: str, student: str, out: Path, decision: str) -> None:
    """grades.csv, status.csv and the student's feedback after a decision."""
    out.mkdir(parents=True, exist_ok=True)
    status = out / "status.csv"
    if status.exists():
        rows = list(csv.reader(status.open()))
        for row in rows[1:]:
            if row[0] == student and row[1] == Status.NEEDS_REVIEW:
                row[1] = f"review {decision}"
        with status.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    gradebook.export(course, aid, out, report.read_statuses(out))
    info = gradebook.load_record(course, student)
    notebook = layout.notebook(course, "autograded", aid, student)
    if info is not None and notebook.exists():
        review = gradebook.load_reviews(course).get(student, {})
        report.annotate(notebook, info, decision, review.get("note", ""))
    nbgrader_run.feedback(course, aid, student)
    layout.copy_feedback(course, aid, out, [student])
