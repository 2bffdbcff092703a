"""Report: what a batch produced, for the instructor (status.csv, cell_scores.csv, the summary) and
for each student (feedback: the kernel's notebook with the verification run's verdicts)."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import nbformat

from . import plan
from .results import FEEDBACK, STATUSES, CheckResult, GradeReport, Review, Status, StudentResult, describe, \
    shown_score, withholds

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
            writer.writerow([name, Status.SKIPPED, "", "", "", why])


def read_statuses(out: Path) -> dict[str, str]:
    """{student: status} of the graded students in `out`/status.csv ({} where there is none)."""
    if not (out / "status.csv").exists():
        return {}
    with (out / "status.csv").open() as f:
        return {r["student"]: r["status"] for r in csv.DictReader(f) if r["status"] != Status.SKIPPED}


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
    if counts[Status.NEEDS_REVIEW]:
        print(f"review: coursekit review {report.assignment} (or make review ASSIGNMENT={report.assignment}) "
              f"lists them; their scores stay out of grades.csv until you accept or reject them")
    if counts[Status.GRADER_ERROR]:
        print("grader errors: the grader itself failed on some submissions (see status.csv); not the students' fault")
    print(f"limits: {report.isolation}")
    if report.phases:
        print("time: " + ", ".join(f"{name} {seconds:g} s" for name, seconds in report.phases.items()))


# ---------------------------------------------------------------- feedback
BANNER = {
    Status.GRADED: "**Graded.** Every check was run again, hidden parts included, outside your notebook: "
                   "the scores below are from that run.",
    Status.NEEDS_REVIEW: "**Under review.** Your instructor will look at this submission before it is "
                         "scored: {reasons}.",
    Review.ACCEPTED: "**Reviewed and accepted** by your instructor. Every check was run again, hidden parts "
                     "included, outside your notebook: the scores below are from that run.",
    Review.REJECTED: "**Reviewed and rejected** by your instructor: this submission scores 0. {note}",
    Status.TIMED_OUT: "**Timed out:** {reason}. The checks that finished are scored below.",
    Status.CRASHED: "**Crashed:** {reason}. The checks that finished are scored below.",
}
MARK = {"coursekit": "verification"}


def record(result: StudentResult) -> dict:
    """What the feedback (and a later review decision) needs to know about a graded submission."""
    return {"status": result.status, "score": result.score, "max_score": result.max_score,
            "reason": result.reason, "review": result.review,
            "checks": {gid: check.to_json() for gid, check in result.checks.items()}}


def annotate(notebook: Path, info: dict, decision: str = "", note: str = "") -> None:
    """Prepare the autograded notebook for nbgrader's feedback (idempotent): drop the grader's
    export cells, put the status at the top and each check's verified verdict under its cell."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not c.get("id", "").startswith(plan.EXPORT_PREFIX)
                and c.get("id") != "coursekit-status"]
    state = decision or info["status"]
    text = BANNER.get(state, "{reason}").format(
        reasons="; ".join(info["review"]) or "the grader could not decide", reason=info["reason"], note=note)
    shown = shown_score(state, info["score"])
    score = "withheld" if shown is None else f"{shown:g}"
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
        line = describe(CheckResult.from_json(check), FEEDBACK, withholds(state))
        cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": line}, metadata=MARK))
    mode = notebook.stat().st_mode
    notebook.chmod(mode | stat.S_IWUSR)         # nbgrader leaves graded notebooks read-only
    nbformat.write(nb, notebook)
    notebook.chmod(mode)
