"""What grading a submission produces: its `Status`, each check's `CheckResult`, the
`StudentResult` and a batch's `GradeReport`; and how a check's result is worded for each reader
(the feedback notebook, Gradescope's results.json, the instructor's hidden Gradescope test) with
the one rule for what is withheld while a submission is under review, which the feedback,
results.json and grades.csv share.

A new per-check field is added here (the field and its wording) and filled in where the check
is graded (`submission.grade_one`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    """A submission's status (status.csv, the summary, results.json)."""

    GRADED = "graded"
    NEEDS_REVIEW = "needs review"
    TIMED_OUT = "timed out"
    CRASHED = "crashed"
    MALFORMED = "malformed"
    GRADER_ERROR = "grader error"
    SKIPPED = "skipped"               # status.csv only: a file intake left out (not graded)


STATUSES = tuple(s for s in Status if s is not Status.SKIPPED)   # the outcomes of grading


class Review(StrEnum):
    """An instructor's decision on a submission that needs review (reviews.json)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# ---------------------------------------------------------------- a check
@dataclass(frozen=True)
class CheckResult:
    """A graded test cell's result in the verification run."""

    passed: bool                  # every check of the cell passed, hidden ones included
    ran: bool                     # the verification run got to it
    message: str = ""             # why it failed (the test's message, scrubbed and capped)
    points: float = 0.0           # the cell's points

    @property
    def outcome(self) -> str:
        return "passed" if self.passed else "failed" if self.ran else "not run"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> CheckResult:
        return cls(**data)


NOT_RUN = CheckResult(passed=False, ran=False)

FEEDBACK, GRADESCOPE, INSTRUCTOR = "feedback", "gradescope", "instructor"
WORDING = {
    FEEDBACK: {
        "withheld": "Grader's verification: withheld (see the top of this notebook).",
        "passed": "Grader's verification (visible and hidden checks): passed, {points:g} points.",
        "failed": "Grader's verification (visible and hidden checks): failed, 0 points. {message}",
        "failed, no message": "Grader's verification (visible and hidden checks): failed, 0 points. ",
        "not run": "Grader's verification: this check did not run (the run ended before it), 0 points."},
    GRADESCOPE: {
        "withheld": "Withheld while your submission is under review by your instructor.",
        "passed": "Passed (visible and hidden checks).",
        "failed": "Failed. {message}",
        "failed, no message": "Failed.",
        "not run": "Not run: the notebook did not get this far."},
    INSTRUCTOR: {
        "withheld": "withheld",
        "passed": "passed",
        "failed": "failed: {message}",
        "failed, no message": "failed",
        "not run": "did not run"},
}


def describe(check: CheckResult, audience: str, withheld: bool = False) -> str:
    """A check's result in the words of `audience` (FEEDBACK, GRADESCOPE or INSTRUCTOR)."""
    words = WORDING[audience]
    if withheld:
        return words["withheld"]
    key = "failed, no message" if check.outcome == "failed" and not check.message else check.outcome
    return words[key].format(points=check.points, message=check.message)


# ---------------------------------------------------------------- under review
def under_review(state: str) -> bool:
    """The submission awaits an instructor's decision (status or review decision)."""
    return state in (Status.NEEDS_REVIEW, Review.PENDING)


def withholds(state: str) -> bool:
    """Each check's verdict is withheld from the student: under review, or rejected."""
    return under_review(state) or state == Review.REJECTED


def shown_score(state: str, score: float) -> float | None:
    """The score a student and grades.csv get: none while under review, 0 once rejected."""
    if under_review(state):
        return None
    return 0.0 if state == Review.REJECTED else score


# ---------------------------------------------------------------- a submission, a batch
@dataclass
class StudentResult:
    student: str
    status: Status
    score: float = 0.0                                      # points the verification run found
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)   # test cell -> points
    manual: list[str] = field(default_factory=list)          # cells awaiting a human grade
    reason: str = ""
    review: list[str] = field(default_factory=list)          # why it needs review
    checks: dict[str, CheckResult] = field(default_factory=dict)   # test cell -> its result
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    verify_seconds: float = 0.0
    recorded: bool = False           # the working copy's gradebook holds this submission
    work: str = ""                   # its working copy (merged into the master course)


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
    phases: dict[str, float] = field(default_factory=dict)   # seconds per step of the batch
