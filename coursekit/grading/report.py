"""Report: what a batch produced, for the instructor (status.csv, cell_scores.csv, the summary) and
for each student (feedback: the kernel's notebook with the verification run's verdicts)."""

from __future__ import annotations

import csv
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import plan

STATUSES = ("graded", "needs review", "timed out", "crashed", "malformed", "grader error")


@dataclass
class StudentResult:
    student: str
    status: str                                             # one of STATUSES
    score: float = 0.0                                      # points the verification run found
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)   # test cell -> points
    manual: list[str] = field(default_factory=list)          # cells awaiting a human grade
    reason: str = ""
    review: list[str] = field(default_factory=list)          # why it needs review
    checks: dict[str, dict] = field(default_factory=dict)    # test cell -> {"passed", "message"}
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


def describe_isolation(capabilities, cell_timeout: float, notebook_timeout: float, memory_gb: float) -> str:
    limits = f"per cell {cell_timeout:g} s, per notebook {notebook_timeout:g} s"
    return f"{limits}, memory {memory_gb:g} GiB; {capabilities.describe()}"


def write_tables(report: GradeReport) -> None:
    """status.csv (cell_scores.csv comes from the gradebook: gradebook.export)."""
    with (report.out / "status.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "score", "max_score", "seconds", "reason"])
        for r in report.results.values():
            writer.writerow([r.student, r.status, r.score, r.max_score, r.seconds, full_reason(r)])
        for name, why in report.skipped.items():
            writer.writerow([name, "skipped", "", "", "", why])


def full_reason(r: StudentResult) -> str:
    parts = [r.reason] if r.reason else []
    if r.review:
        parts.append("needs review: " + "; ".join(r.review))
    return "; ".join(parts)


def print_summary(report: GradeReport) -> None:
    width = max([7, *(len(s) for s in report.results)])
    print(f"{report.assignment}: {len(report.results)} submissions, {report.jobs} workers, "
          f"{report.seconds:g} s -> {report.out}")
    print(f"{'student':<{width}}  {'score':>11}  status")
    for r in report.results.values():
        manual = f" (+ manual: {', '.join(r.manual)})" if r.manual else ""
        reason = full_reason(r)
        print(f"{r.student:<{width}}  {r.score:>5g}/{r.max_score:<5g}  {r.status}"
              f"{': ' + reason if reason else ''}{manual}")
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    counts = {s: sum(r.status == s for r in report.results.values()) for s in STATUSES}
    print("statuses: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f", {len(report.skipped)} skipped")
    if counts["needs review"]:
        print(f"review: coursekit review {report.assignment} (or make review ASSIGNMENT={report.assignment}) "
              f"lists them; their scores stay out of grades.csv until you accept or reject them")
    if counts["grader error"]:
        print("grader errors: the grader itself failed on some submissions (see status.csv); not the students' fault")
    print(f"limits: {report.isolation}")
    if report.phases:
        print("time: " + ", ".join(f"{name} {seconds:g} s" for name, seconds in report.phases.items()))


# ---------------------------------------------------------------- feedback
BANNER = {
    "graded": "**Graded.** Every check was run again, hidden parts included, outside your notebook: "
              "the scores below are from that run.",
    "needs review": "**Under review.** Your instructor will look at this submission before it is "
                    "scored: {reasons}.",
    "accepted": "**Reviewed and accepted** by your instructor. Every check was run again, hidden parts "
                "included, outside your notebook: the scores below are from that run.",
    "rejected": "**Reviewed and rejected** by your instructor: this submission scores 0. {note}",
    "timed out": "**Timed out:** {reason}. The checks that finished are scored below.",
    "crashed": "**Crashed:** {reason}. The checks that finished are scored below.",
}
MARK = {"coursekit": "verification"}


def record(result: StudentResult) -> dict:
    """What the feedback (and a later review decision) needs to know about a graded submission."""
    return {"status": result.status, "score": result.score, "max_score": result.max_score,
            "reason": result.reason, "review": result.review, "checks": result.checks}


def annotate(notebook: Path, info: dict, decision: str = "", note: str = "") -> None:
    """Prepare the autograded notebook for nbgrader's feedback (idempotent): drop the grader's
    export cells, put the status at the top and each check's verified verdict under its cell."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not c.get("id", "").startswith(plan.EXPORT_PREFIX)
                and c.get("id") != "coursekit-status"]
    state = decision or info["status"]
    withheld = state in ("needs review", "rejected")
    text = BANNER.get(state, "{reason}").format(
        reasons="; ".join(info["review"]) or "the grader could not decide", reason=info["reason"], note=note)
    score = "withheld" if state == "needs review" else f"{0 if state == 'rejected' else info['score']:g}"
    banner = nbformat.v4.new_markdown_cell(f"**Grader:** {text}\n\nVerified score: {score} / {info['max_score']:g}")
    banner.id = "coursekit-status"
    nb.cells.insert(0, banner)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("metadata") != MARK]
        check = info["checks"].get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if check is None:
            continue
        if withheld:
            line = "Grader's verification: withheld (see the top of this notebook)."
        elif check["passed"]:
            line = f"Grader's verification (visible and hidden checks): passed, {check['points']:g} points."
        elif check["ran"]:
            line = f"Grader's verification (visible and hidden checks): failed, 0 points. {check['message']}"
        else:
            line = "Grader's verification: this check did not run (the run ended before it), 0 points."
        cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": line}, metadata=MARK))
    mode = notebook.stat().st_mode
    notebook.chmod(mode | stat.S_IWUSR)         # nbgrader leaves graded notebooks read-only
    nbformat.write(nb, notebook)
    notebook.chmod(mode)
