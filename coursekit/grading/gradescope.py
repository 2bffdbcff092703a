"""Grading on Gradescope: each assignment exported as a Gradescope autograder zip.

    coursekit gradescope ID   →  autograder/gradescope/ID.zip

The zip holds, at its root, `setup.sh` (Python 3.11 and the pinned environment from
requirements.txt, the data files the assignment reads (course.toml `data`) checked against their
sha256) and `run_autograder`, which grades `$AUTOGRADER_ROOT/submission/*.ipynb` (AUTOGRADER_ROOT
defaults to /autograder) with this kit's own pipeline: the kernel course generated here from the
source notebook (hidden tests removed), the repair, static review, kernel run and verification run
of `make grade`, the hidden tests only ever in the verification run's input. It writes
`results/results.json` in Gradescope's format: one test per graded cell, the status (graded, timed
out, crashed, malformed, needs review) and reason on top; a submission that cannot be graded still
gets a results.json that says why, with score 0. One that needs an instructor's decision (needs
review, crashed, timed out, grader error) also gets a test with visibility "hidden" (instructors
see it, students never do), 0 points: its verified score out of the maximum, every reason and
review finding, and each graded cell's verified result.
Gradescope runs one container per submission: the container is the sandbox, and where it runs
student code as root the kit still drops it to an unprivileged uid and keeps the source unreadable.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from .. import REPO
from .. import notebooks as nbs
from ..config import load_course
from ..data import published_files, sha256_of
from .results import GRADESCOPE, INSTRUCTOR, NOT_RUN, Status, StudentResult, describe, withholds

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")

SETUP_SH = (Path(__file__).with_name("gradescope_setup.sh")).read_text()   # linted and tested on its own

RUN_AUTOGRADER = r'''#!/usr/bin/env bash
# Gradescope runs this once per submission; results land in $AUTOGRADER_ROOT/results/results.json.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export COURSE_DATA_DIR="${COURSE_DATA_DIR:-$ROOT/data}"
export PYTHONPATH="$ROOT/source/kit${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$ROOT/venv/bin:$PATH"
cd "$ROOT" || exit 1
exec "$ROOT/venv/bin/python" -m coursekit.grading.gradescope run "$ROOT"
'''


# ---------------------------------------------------------------- export (the instructor's side)
def export(assignment_id: str, dest: Path | None = None, source: Path | None = None,
           data_dir: Path | None = None) -> Path:
    """Write the autograder zip of an assignment. `source` replaces its source notebook (the tests
    export a prefix); the data is the assignment's `data` in course.toml, from `data_dir` (default
    COURSE_DATA_DIR) when it has it."""
    from .kernel_course import kernel_course

    course = load_course()
    a = course.assignments[assignment_id]
    if not a.data:
        raise ValueError(f"course.toml [assignments.{a.id}] has no `data` list: name the data files its "
                         f"notebook reads (e.g. data = [\"medmnist/pneumoniamnist.npz\"]); the zip's "
                         f"setup.sh checks at least one")
    dest = dest or REPO / "autograder" / "gradescope" / f"{a.id}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    source_nb = nbs.read(source or a.notebook("source"))
    data_dir = data_dir or (Path(os.environ["COURSE_DATA_DIR"]) if os.environ.get("COURSE_DATA_DIR") else None)
    with tempfile.TemporaryDirectory() as tmp:
        template = kernel_course(Path(tmp) / "template", a.id, source_nb)
        settings = {"assignment": a.id, "cell_timeout": a.cell_timeout,
                    "notebook_timeout": a.notebook_timeout, "memory_gb": a.memory_gb,
                    "max_upload_mb": a.max_upload_mb, "visibility": visibility(a.id)}
        sums, urls = [], []
        published = {spec.file: spec for spec in published_files().values()}
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            write(z, "setup.sh", SETUP_SH, 0o755)
            write(z, "run_autograder", RUN_AUTOGRADER, 0o755)
            write(z, "requirements.txt", (REPO / "requirements.txt").read_text())
            write(z, "gradescope.json", json.dumps(settings, indent=1))
            write(z, f"{a.id}.ipynb", nbs.writes(source_nb))             # hidden tests: grader only
            for path in sorted((REPO / "coursekit").rglob("*")):     # its modules and setup.sh
                if path.suffix in (".py", ".sh"):
                    write(z, f"kit/{path.relative_to(REPO)}", path.read_text())
            for name in ("course.toml", "nbgrader_config.py", "requirements.txt"):
                write(z, f"kit/{name}", (REPO / name).read_text())
            for path in sorted(template.rglob("*")):
                if path.is_file() and path.name != ".nbgrader.log":
                    z.write(path, f"template/{path.relative_to(template)}")
            for relative in a.data:
                staged = data_dir / relative if data_dir else None
                if staged is not None and staged.is_file():
                    z.write(staged, f"data/{relative}")
                    sums.append(f"{sha256_of(staged)}  {relative}")
                elif relative in published:
                    sums.append(f"{published[relative].sha256}  {relative}")
                    urls.append(f" {relative} {published[relative].url}")
                else:
                    raise FileNotFoundError(
                        f"{relative} is neither staged under COURSE_DATA_DIR ({data_dir}) nor published "
                        f"(url and sha256 in course.toml): the autograder could not get its data")
            write(z, "data.sha256", "\n".join(sums) + "\n")
            write(z, "data.urls", "\n".join(urls) + ("\n" if urls else ""))
    return dest


def write(z: zipfile.ZipFile, name: str, text: str, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


def visibility(assignment_id: str) -> dict:
    """{"default": ..., grade_id: ...}: when students see each graded cell's result on Gradescope."""
    course = load_course()
    rules = {"default": course.gradescope_visibility}
    rules.update(course.assignments[assignment_id].gradescope_visibility)
    for key, value in rules.items():
        if value not in VISIBILITIES:
            raise ValueError(f"course.toml: visibility {value!r} for {key} is not one of {VISIBILITIES}")
    return rules


# ---------------------------------------------------------------- run_autograder (Gradescope's side)
def run(root: Path) -> dict:
    """Grade the submission in `root`/submission; write and return `root`/results/results.json."""
    started = time.monotonic()
    source_dir = root / "source"
    settings = json.loads((source_dir / "gradescope.json").read_text())
    aid = settings["assignment"]
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = grade(root, source_dir, settings)
    except Exception as err:                       # the grader failed: say so, never blame the student
        import traceback
        details = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}"
        source = _read_source(source_dir, aid)
        results = {"score": 0.0, "output": f"Status: grader error. The autograder itself failed "
                                            f"({type(err).__name__}); your instructor has been told.",
                   "tests": [grader_error_test(details, source)],
                   "extra_data": {"status": Status.GRADER_ERROR, "error": without_hidden(str(err), source)[:2000]}}
    results["execution_time"] = int(round(time.monotonic() - started))
    results.setdefault("stdout_visibility", "hidden")
    (results_dir / "results.json").write_text(json.dumps(results, indent=1))
    print(f"{aid}: {results['extra_data'].get('status')} {results['score']:g}", flush=True)
    return results


def grade(root: Path, source_dir: Path, settings: dict) -> dict:
    from .submission import grade_alone

    aid = settings["assignment"]
    notebooks = sorted((root / "submission").glob("*.ipynb"))
    preferred = [p for p in notebooks if p.name == f"{aid}.ipynb"]
    if not notebooks:
        result = StudentResult("submission", Status.MALFORMED, reason=f"no notebook submitted (expected {aid}.ipynb)")
        return results_json(result, source_dir, settings, {})
    # in the system temporary folder: every uid may enter it (the sandbox runs as an unprivileged uid)
    work = Path(tempfile.mkdtemp(prefix="gs-"))
    folder = work / "submissions"
    folder.mkdir()
    shutil.copy((preferred or notebooks)[0], folder / "submission.ipynb")
    limits = {k: settings[k] for k in ("cell_timeout", "notebook_timeout", "memory_gb", "max_upload_mb")}
    result, cell_max = grade_alone(aid, folder, work, source_dir / f"{aid}.ipynb",
                                    source_dir / "template", limits,
                                    hide=(str(source_dir), str(work)))
    return results_json(result, source_dir, settings, cell_max)


def results_json(result, source_dir: Path, settings: dict, cell_max: dict[str, float]) -> dict:
    """Gradescope's results format for one graded submission; one that needs an instructor's
    decision also gets the hidden `INSTRUCTOR_TEST` (its verified score and the grader's details)."""
    aid = settings["assignment"]
    source = nbs.read(source_dir / f"{aid}.ipynb")
    rules = settings["visibility"]
    tests = []
    withheld = withholds(result.status)
    for number, cell in enumerate((c for c in source.cells if nbs.is_test(c)), start=1):
        gid = nbs.grade_id(cell)
        maximum = cell_max.get(gid, float(nbs.nbgrader(cell).get("points", 0)))
        check = result.checks.get(gid, NOT_RUN)
        passed = check.passed and not withheld
        if result.status == Status.MALFORMED and check.outcome == "not run" and not withheld:
            output = result.reason
        else:
            output = describe(check, GRADESCOPE, withheld)
        first = cell.source.strip().splitlines()[0].strip().strip('"')
        tests.append({"name": f"{gid}: {first}", "number": str(number),
                      "score": float(result.cells.get(gid, 0.0)) if not withheld else 0.0,
                      "max_score": maximum, "status": "passed" if passed else "failed",
                      "output": output, "visibility": rules.get(gid, rules["default"])})
    status = result.status
    reasons = "; ".join(r for r in [result.reason, *result.review] if r)
    lines = [f"Status: {status}."]
    if status == Status.NEEDS_REVIEW:
        lines.append("Your instructor will look at this submission before it is scored; "
                     "until then it scores 0 here." + (f" Why: {reasons}" if reasons else ""))
    elif reasons:
        lines.append(reasons)
    score = 0.0 if status in (Status.NEEDS_REVIEW, Status.MALFORMED) else sum(t["score"] for t in tests)
    if status in FOR_INSTRUCTORS:
        tests.insert(0, instructor_test(result, source, tests))
    return {"score": score, "output": " ".join(lines), "output_format": "text", "tests": tests,
            "extra_data": {"status": status, "verified_score": result.score, "reason": reasons}}


# ---------------------------------------------------------------- what only instructors see
INSTRUCTOR_TEST = "Instructor: verified score and grading details"
FOR_INSTRUCTORS = (Status.NEEDS_REVIEW, Status.CRASHED, Status.TIMED_OUT, Status.GRADER_ERROR)
WHAT_TO_DO = {
    Status.NEEDS_REVIEW: "Gradescope scores it 0 until you decide: read the notebook (and the findings below); "
                         "to accept it, give it the verified score by hand (manual grading: a point adjustment).",
    Status.CRASHED: "Gradescope gives it the checks that finished. The kernel died (the memory cap, a "
                    "segfault, an exit): read the notebook before you change the score by hand.",
    Status.TIMED_OUT: "Gradescope gives it the checks that finished. A cell or the notebook ran past its time "
                      "limit: read the notebook before you change the score by hand.",
    Status.GRADER_ERROR: "The grader failed, not the student: re-run the autograder on this submission, or "
                         "grade the notebook with `coursekit grade`, and set the score by hand.",
}


def instructor_test(result, source, tests: list[dict]) -> dict:
    """A test students never see (visibility hidden, 0 points): the status, the verified score out of
    the maximum, every reason and review finding, and each graded cell's verified result."""
    maximum = sum(t["max_score"] for t in tests)
    lines = [f"Status: {result.status}.",
             f"Verified score: {result.score:g} / {maximum:g} (what accepting this submission would give; "
             f"the verification run, hidden checks included).", WHAT_TO_DO[result.status]]
    if result.reason:
        lines += ["", "Reasons:", *(f"- {r}" for r in result.reason.split("; ") if r)]
    if result.review:
        lines += ["", "Review findings:", *(f"- {r}" for r in result.review)]
    lines += ["", "Graded cells (verification run):"]
    for test in tests:
        gid = test["name"].split(":")[0]
        points = f"{result.cells.get(gid, 0.0):g} / {test['max_score']:g}"
        verdict = describe(result.checks.get(gid, NOT_RUN), INSTRUCTOR)
        lines.append(f"- {gid}: {points}, {verdict}")
    if result.manual:
        lines += ["", f"Graded by hand, not in this score: {', '.join(result.manual)}."]
    return _hidden_test("\n".join(lines), source)


def grader_error_test(details: str, source) -> dict:
    """The hidden instructor test when run_autograder itself failed (no result to show); `source`
    is the source notebook, or None where it could not be read."""
    maximum = f"{sum(float(nbs.nbgrader(c).get('points', 0)) for c in source.cells if nbs.is_test(c)):g}" \
        if source is not None else "?"
    lines = ["Status: grader error.", f"Verified score: none / {maximum} (grading did not finish).",
             WHAT_TO_DO[Status.GRADER_ERROR], "", "The grader's error:", details.strip()]
    return _hidden_test("\n".join(lines), source)


def _read_source(source_dir: Path, aid: str):
    try:
        return nbs.read(source_dir / f"{aid}.ipynb")
    except Exception:                              # the source may be what failed
        return None


def without_hidden(text: str, source) -> str:
    """`text` with every hidden-test line of `source` (a notebook, or None) replaced."""
    if source is not None:
        for line in sorted(nbs.secret_lines(source)[1], key=len, reverse=True):
            text = text.replace(line, "[hidden test line]")
    return text


def _hidden_test(output: str, source) -> dict:
    """0 of 0 points, visibility hidden; no hidden-test line in it, at most 20,000 characters."""
    output = without_hidden(output, source)
    if len(output) > 20000:
        output = output[:19999] + "…"
    return {"name": INSTRUCTOR_TEST, "score": 0.0, "max_score": 0.0, "status": "failed",
            "output": output, "visibility": "hidden"}


def main(argv: list[str]) -> int:
    verb, *args = argv
    if verb == "run":
        results = run(Path(args[0] if args else os.environ.get("AUTOGRADER_ROOT", "/autograder")))
        return 0 if results["extra_data"].get("status") != Status.GRADER_ERROR else 3
    raise SystemExit("usage: python -m coursekit.grading.gradescope run [ROOT]")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
