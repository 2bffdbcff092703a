"""A small grading batch for the venvs CI builds at the ends of the Python range (`make grade-smoke`):
resnet_blocks' reference and one wrong answer (`block_missing_skip`: the residual block without its
skip connection), graded by `grade_batch` exactly as tests/test_grading.py grades them (kernel run,
then verification run), up to the residual block's last check. Not named test_*.py: `make test`
grades the whole corpus already; this file runs only when named (`pytest tests/grade_smoke.py`)."""

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch
from tests.submissions import resnet_blocks
from tests.grading_batches import cell_totals, table

pytestmark = pytest.mark.slow
WRONG = next(case for case in resnet_blocks.CASES if case.name == "block_missing_skip")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    assignment = load_course().assignments["resnet_blocks"]
    source = nbs.prefix(nbs.read(assignment.notebook("source")), WRONG.stop_after)
    release = nbs.prefix(nbs.read(assignment.notebook("release")), WRONG.stop_after)
    reference = nbs.reference_answers(source)
    tmp = tmp_path_factory.mktemp("grade-smoke")
    (tmp / "submissions").mkdir()
    nbs.write(nbs.make_submission(release, reference), tmp / "submissions" / "reference.ipynb")
    nbs.write(nbs.make_submission(release, {**reference, WRONG.cell: WRONG.code}),
              tmp / "submissions" / f"{WRONG.name}.ipynb")
    nbs.write(source, tmp / "resnet_blocks.ipynb")
    report = grade_batch("resnet_blocks", tmp / "submissions", out=tmp / "results", work=tmp / "work",
                         source=tmp / "resnet_blocks.ipynb")
    print("\n" + table(report))
    return report, source


def test_reference_gets_full_marks(graded):
    report, _ = graded
    ref = report.results["reference"]
    assert ref.status == "graded" and ref.score == ref.max_score > 0, (ref.reason, ref.review, table(report))
    assert not ref.reason and not ref.review, f"the reference was repaired or flagged: {ref.reason} {ref.review}"


def test_wrong_answer_loses_points_on_its_cell_only(graded):
    report, source = graded
    wrong = report.results[WRONG.name]
    assert wrong.status == "graded" and not wrong.review, (wrong.status, wrong.reason, wrong.review)
    totals = cell_totals(report, WRONG.name, source)
    score, full = totals.pop(WRONG.cell)
    assert score < full, f"{WRONG.name} kept full marks on {WRONG.cell}: {table(report)}"
    assert all(s == m for s, m in totals.values()), f"{WRONG.name} lost points elsewhere: {totals}"
    assert wrong.score < report.results["reference"].score
