"""Re-running a batch is idempotent, and a re-submission replaces the student's old grade."""

import csv

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch

pytestmark = pytest.mark.slow


def rows(report):
    with (report.out / "grades.csv").open() as f:
        return [(r["student_id"], float(r["score"])) for r in csv.DictReader(f)]


def test_rerun_is_idempotent_and_resubmission_replaces(tmp_path):
    a = load_course().assignments["resnet_blocks"]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    first, second = tmp_path / "first", tmp_path / "second"
    nbs.write(nbs.make_submission(release, nbs.reference_answers(source)), first / "alice.ipynb")
    nbs.write(release, second / "alice.ipynb")          # alice re-submits an empty notebook
    work, out = tmp_path / "work", tmp_path / "out"

    graded = rows(grade_batch(a.id, first, out=out, work=work, jobs=1))
    again = rows(grade_batch(a.id, first, out=out, work=work, jobs=1))
    assert graded == again == [("alice", 12.0)]
    assert rows(grade_batch(a.id, second, out=out, work=work, jobs=1)) == [("alice", 0.0)]
