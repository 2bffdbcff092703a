"""Re-running a batch is idempotent, a re-submission replaces the student's old grade, and a
submission that needs review stays out of grades.csv until an instructor accepts or rejects it."""

import csv

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import review
from coursekit.grading.batch import grade_batch

pytestmark = pytest.mark.slow


def rows(out):
    with (out / "grades.csv").open() as f:
        return {r["student_id"]: (r["score"], r["review"]) for r in csv.DictReader(f)}


def statuses(out):
    with (out / "status.csv").open() as f:
        return {r["student"]: r["status"] for r in csv.DictReader(f)}


def test_rerun_resubmission_and_review(tmp_path):
    a = load_course().assignments["resnet_blocks"]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    reference = nbs.reference_answers(source)
    first, second = tmp_path / "first", tmp_path / "second"
    nbs.write(nbs.make_submission(release, reference), first / "alice.ipynb")
    patched = "torch.allclose = lambda *args, **kwargs: True\n" + reference["residual_block"]
    nbs.write(nbs.make_submission(release, {**reference, "residual_block": patched}), first / "bob.ipynb")
    nbs.write(release, second / "alice.ipynb")          # alice re-submits an empty notebook
    work, out = tmp_path / "work", tmp_path / "out"

    grade_batch(a.id, first, out=out, work=work, jobs=1)
    graded = rows(out)
    assert graded == {"alice": ("18.0", ""), "bob": ("", "pending")}, graded
    assert statuses(out)["bob"] == "needs review"
    assert "Under review" in (out / "feedback" / "bob.html").read_text()

    grade_batch(a.id, first, out=out, work=work, jobs=1)
    assert rows(out) == graded                         # idempotent

    assert review.main(a.id, "bob", "accepted", "looked at it: harmless", out=out, work=work) == 0
    # accepted: bob's verified points, 11 of 18: the verification run refuses his assignment to
    # torch.allclose, which stops his answer cell at its first line (residual_block's 7 points)
    assert rows(out)["bob"] == ("11.0", "accepted") and statuses(out)["bob"] == "review accepted"
    assert "Reviewed and accepted" in (out / "feedback" / "bob.html").read_text()
    assert review.main(a.id, "bob", "rejected", out=out, work=work) == 0
    assert rows(out)["bob"] == ("0.0", "rejected")

    grade_batch(a.id, second, out=out, work=work, jobs=1)
    assert rows(out)["alice"] == ("0.0", "")           # the re-submission replaced the grade


def test_a_changed_source_is_refused_until_graded_fresh(tmp_path, capsys):
    """nbgrader keeps one set of graded cells per gradebook: grading the class again after the source
    gained a graded cell stops before anyone is graded and says what to do; with `fresh` the old
    master course (hand grades, reviews) is set aside and the class graded anew."""
    from coursekit.grading.batch import SourceChanged

    a = load_course().assignments["resnet_blocks"]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    submissions, work, out = tmp_path / "submissions", tmp_path / "work", tmp_path / "out"
    nbs.write(nbs.prefix(release, "test_residual_block_shapes"), submissions / "alice.ipynb")
    for stop in ("test_residual_block_shapes", "test_residual_block_structure"):
        nbs.write(nbs.prefix(source, stop), tmp_path / f"{stop}.ipynb")

    grade_batch(a.id, submissions, out=out, work=work, jobs=1, source=tmp_path / "test_residual_block_shapes.ipynb")
    later = tmp_path / "test_residual_block_structure.ipynb"
    with pytest.raises(SourceChanged, match="--fresh"):
        grade_batch(a.id, submissions, out=out, work=work, jobs=1, source=later)
    assert statuses(out) == {"alice": "graded"}                  # the results of the first run stand

    report = grade_batch(a.id, submissions, out=out, work=work, jobs=1, source=later, fresh=True)
    assert set(report.cell_max) == {"test_residual_block_shapes", "test_residual_block_structure"}
    aside = [p.name for p in work.iterdir() if p.name.startswith("course.before-")]
    assert len(aside) == 1 and (work / aside[0] / "gradebook.db").exists(), aside
    assert "set aside" in capsys.readouterr().out
