"""Gradescope's results.json for each status, from hand-made results (no grading run: seconds).

Students see the status and the per-cell results their visibility allows; a submission an
instructor must decide on (needs review, crashed, timed out, grader error) also gets a hidden test,
which instructors always see on Gradescope and students never do, with the verified score, every
reason and finding and each graded cell's verified result. No hidden-test line anywhere."""

import dataclasses
import json

import jsonschema
import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import gradescope
from coursekit.grading.results import CheckResult, StudentResult

AID = "resnet_blocks"
A = load_course().assignments[AID]
SOURCE_DIR = A.notebook("source").parent
SOURCE = nbs.read(A.notebook("source"))
SETTINGS = {"assignment": AID, "visibility": gradescope.visibility(AID)}
SCHEMA = json.loads((REPO / "tests" / "schemas" / "gradescope_results.schema.json").read_text())
CELLS = {nbs.grade_id(c): float(nbs.nbgrader(c)["points"]) for c in SOURCE.cells if nbs.is_test(c)}
HIDDEN = sorted(nbs.secret_lines(SOURCE)[1])


def result(status, reason="", review=()):
    """Every check ran and the first two failed (one with a message); verified score: the rest."""
    first, second, *rest = CELLS
    checks = {gid: CheckResult(passed=gid in rest, ran=True, message="", points=CELLS[gid]) for gid in CELLS}
    checks[first] = dataclasses.replace(checks[first], message="AssertionError: expected 4 channels")
    return StudentResult("submission", status, score=sum(CELLS[g] for g in rest),
                         max_score=sum(CELLS.values()),
                         cells={g: (CELLS[g] if g in rest else 0.0) for g in CELLS},
                         reason=reason, review=list(review), checks=checks)


CASES = {
    "needs review": result("needs review", review=[
        "static review: residual_block line 3 calls setattr on a library module",
        "test_residual_block_behaviour: the visible checks passed in your kernel but failed in the verification run"]),
    "crashed": result("crashed", reason="the kernel died in plain_vs_residual (memory cap 4 GiB)"),
    "timed out": result("timed out", reason="plain_vs_residual ran past 180 s; the notebook past 300 s"),
    "grader error": result("grader error", reason="grader error: OSError: disk full | Traceback: ..."),
}


def check_valid_and_leak_free(results):
    jsonschema.validate(results, SCHEMA)
    text = json.dumps(results)
    assert not [line for line in HIDDEN if json.dumps(line)[1:-1] in text], "hidden-test line in results.json"


def instructor_tests(results):
    return [t for t in results["tests"] if t["name"] == gradescope.INSTRUCTOR_TEST]


@pytest.mark.parametrize("status", list(CASES))
def test_instructors_see_the_verified_score_and_every_detail(status):
    r = CASES[status]
    results = gradescope.results_json(r, SOURCE_DIR, SETTINGS, {})
    check_valid_and_leak_free(results)
    assert results["output"].startswith(f"Status: {status}.")            # what students see
    assert results["extra_data"]["verified_score"] == r.score
    (test,) = instructor_tests(results)
    assert results["tests"][0] is test
    assert test["visibility"] == "hidden" and test["score"] == 0 and test["max_score"] == 0
    output = test["output"]
    assert output.startswith(f"Status: {status}.")
    assert f"Verified score: {r.score:g} / {sum(CELLS.values()):g}" in output
    for reason in [*filter(None, r.reason.split("; ")), *r.review]:
        assert f"- {reason}\n" in output
    first, second, *rest = CELLS
    assert f"- {first}: 0 / {CELLS[first]:g}, failed: AssertionError: expected 4 channels\n" in output
    assert f"- {second}: 0 / {CELLS[second]:g}, failed\n" in output
    for gid in rest:
        assert f"- {gid}: {CELLS[gid]:g} / {CELLS[gid]:g}, passed" in output
    others = [t for t in results["tests"] if t is not test]
    assert [t["name"].split(":")[0] for t in others] == list(CELLS)          # the graded cells, unchanged
    assert sum(t["max_score"] for t in results["tests"]) == sum(CELLS.values())
    if status == "needs review":
        assert results["score"] == 0 and all(t["score"] == 0 for t in others)
        assert "Withheld" in others[0]["output"]
    else:
        assert results["score"] == r.score


def test_the_instructor_test_never_quotes_a_hidden_test_line():
    """Messages come scrubbed from the verification run; the instructor test scrubs again."""
    r = result("needs review", review=[f"verification: refused a read of {HIDDEN[0]}"])
    first = next(iter(CELLS))
    r.checks[first] = dataclasses.replace(r.checks[first], message=f"AssertionError ({HIDDEN[1]})")
    test = gradescope.instructor_test(r, SOURCE, gradescope.results_json(r, SOURCE_DIR, SETTINGS, {})["tests"][1:])
    assert "refused a read of [hidden test line]" in test["output"]
    assert "AssertionError ([hidden test line])" in test["output"]
    assert not [line for line in HIDDEN if line in test["output"]]


@pytest.mark.parametrize("status", ["graded", "malformed"])
def test_no_instructor_test_where_nothing_needs_a_decision(status):
    r = result(status) if status == "graded" else StudentResult("submission", "malformed", reason="empty file")
    results = gradescope.results_json(r, SOURCE_DIR, SETTINGS, {})
    check_valid_and_leak_free(results)
    assert not instructor_tests(results) and len(results["tests"]) == len(CELLS)


def test_a_failing_autograder_still_shows_instructors_its_error(tmp_path, monkeypatch, capsys):
    """run(): grade() raised; results.json says grader error to students and the error to instructors."""
    source = tmp_path / "source"
    source.mkdir()
    nbs.write(SOURCE, source / f"{AID}.ipynb")
    (source / "gradescope.json").write_text(json.dumps(SETTINGS))

    def failing(*args):
        raise OSError(f"no space left on device while copying {HIDDEN[2]}")

    monkeypatch.setattr(gradescope, "grade", failing)
    results = gradescope.run(tmp_path)
    check_valid_and_leak_free(results)
    assert json.loads((tmp_path / "results" / "results.json").read_text()) == results
    assert results["score"] == 0 and results["output"].startswith("Status: grader error.")
    assert "no space left" not in results["output"]                        # students: the status only
    (test,) = instructor_tests(results)
    assert test["visibility"] == "hidden" and test["score"] == test["max_score"] == 0
    assert f"Verified score: none / {sum(CELLS.values()):g}" in test["output"]
    assert "OSError: no space left on device while copying [hidden test line]" in test["output"]
    assert "in failing" in test["output"]                                   # the traceback's last frame
    assert gradescope.main(["run", str(tmp_path)]) == 3
