"""The grading suite: each assignment's submissions graded exactly as `make grade` does it (nbgrader
autograde in the sandboxed kernel, then the verification run), in parallel.

Reference → full marks, graded, no flag; untouched release → 0 on every autograded cell; each wrong
answer loses points on its own cell's tests and keeps every other cell's, with no flag; right
answers written differently keep full marks, with no flag; hostile and broken submissions
(tests/submissions/hostile.py) get their expected status and change nothing outside their working
copy; every attack of the cheating corpus (tests/submissions/cheating.py) is marked needs review or
earns no more than the honest code under it. No feedback file shows a hidden-test line.
"""

import html
import re
import subprocess
from collections import Counter

import pytest

from coursekit import notebooks as nbs
from tests.grading_batches import CASES, GRADED_UP_TO, HOSTILE, cell_totals, graded_after, report_table, table
from tests.submissions import cheating, hostile

pytestmark = pytest.mark.slow


def batch_of(params):
    """The xdist group of a parametrized grading test: its batch (conftest)."""
    aid = params["aid"]
    item = params.get("case") or params.get("attack")
    stop_after = getattr(item, "stop_after", GRADED_UP_TO.get(aid))   # hostile cases: the home batch
    stop_after = params.get("stop_after", stop_after)                  # a test that names its batch
    return f"grading:{aid}:{stop_after}"


@pytest.mark.parametrize("aid", list(CASES))
def test_reference_gets_full_marks(aid, grading_batches, request):
    run = grading_batches(aid, GRADED_UP_TO.get(aid))
    report_table(request.node, run)
    report = run["report"]
    ref = report.results["reference"]
    assert ref.status == "graded" and ref.score == ref.max_score > 0, (ref.reason, ref.review, table(report))
    assert not ref.reason and not ref.review, f"the reference was repaired or flagged: {ref.reason} {ref.review}"


@pytest.mark.parametrize("aid,stop_after", [(aid, None) for aid, stop in GRADED_UP_TO.items()
                                            if graded_after(aid, stop)])
def test_training_part_is_graded_whole(aid, stop_after, grading_batches, request):
    """Where the reference is graded up to a cell before training, the honest submissions graded
    whole (the cheating corpus's bars) go through the training cells' export and the verification
    run's checks of the trained models: graded, no flag, each later graded cell run by the verification."""
    run = grading_batches(aid, stop_after)
    report_table(request.node, run)
    report, later = run["report"], graded_after(aid, GRADED_UP_TO[aid])
    bars = cheating.cases(aid, None)[0]
    assert bars, f"{aid}: no honest submission is graded whole"
    for bar in bars:
        result = report.results[bar.name]
        assert result.status == "graded" and not result.review, (bar.name, result.status, result.reason)
        assert all(result.checks[gid].ran for gid in later), (bar.name, result.checks)


@pytest.mark.parametrize("aid", list(CASES))
def test_untouched_release_gets_zero(aid, grading_batches):
    report = grading_batches(aid, GRADED_UP_TO.get(aid))["report"]
    untouched = report.results["untouched"]
    assert untouched.status == "graded" and untouched.score == 0, (untouched.review, table(report))


@pytest.mark.parametrize("aid,case", [(aid, c) for aid, cases in CASES.items() for c in cases],
                         ids=lambda v: getattr(v, "name", v))
def test_fixture_scores_as_expected(aid, case, grading_batches, request):
    run = grading_batches(aid, case.stop_after)
    report_table(request.node, run)
    report = run["report"]
    result = report.results[case.name]
    assert result.status == "graded" and not result.review, (result.status, result.reason, result.review)
    for cell, (score, maximum) in cell_totals(report, case.name, run["source"]).items():
        if cell == case.cell and not case.right:
            assert score < maximum, f"{case.name} should lose points on {cell}\n{table(report)}"
        else:
            assert score == maximum, f"{case.name} should keep full marks on {cell}\n{table(report)}"
    if case.loses:
        lost = {t for t, m in report.cell_max.items() if result.cells.get(t, 0) < m}
        assert lost == set(case.loses), f"{case.name} should lose exactly {sorted(case.loses)}\n{table(report)}"


@pytest.mark.parametrize("aid,case", [(aid, c) for aid, cases in HOSTILE.items() for c in cases],
                         ids=lambda v: getattr(v, "name", v))
def test_hostile_submission_is_contained(aid, case, grading_batches):
    run = grading_batches(aid, GRADED_UP_TO.get(aid))
    result = run["report"].results[case.name]
    reason = "; ".join([result.reason, *result.review])
    assert result.status == case.expect, f"{case.name}: {result.status} ({reason})"
    if case.reason:
        assert case.reason in reason, f"{case.name}: reason was {reason!r}"
    if case.name in hostile.FULL_MARKS:
        assert result.score == result.max_score, f"{case.name}: {result.score}/{result.max_score} {result.review}"
    if case.evidence:
        executed = run["work"] / "course" / "autograded" / case.name / aid / f"{aid}.ipynb"
        assert case.evidence in executed.read_text(), f"{case.name}: no {case.evidence!r} in its output"


ATTACKS = [(a.assignment, a) for a in cheating.ATTACKS]


@pytest.mark.parametrize("aid,attack", ATTACKS, ids=lambda v: getattr(v, "name", v))
def test_cheating_earns_nothing(aid, attack, grading_batches, request):
    """Marked needs review, or no more points than the honest code under the attack (graded)."""
    run = grading_batches(aid, attack.stop_after)
    report_table(request.node, run)
    result, bar = run["report"].results[attack.name], run["report"].results[attack.honest]
    request.node.user_properties.append(("cheating_row", (attack.name, (
        attack.cls, str(attack.expect), str(result.status), result.score, bar.score, result.max_score,
        "; ".join(result.review)[:90]))))
    assert bar.status == "graded" and not bar.review, \
        f"the honest bar {bar.name}: {bar.status} {bar.review} ({bar.reason})"
    if attack.expect == cheating.REVIEW:
        assert result.status == "needs review", \
            f"{attack.name}: {result.status}, {result.score}/{result.max_score} ({result.reason})"
    else:
        assert result.status == "graded" and not result.review, \
            f"{attack.name}: {result.status} {result.review} ({result.reason})"
        assert result.score <= bar.score, f"{attack.name}: {result.score} > honest {bar.score}"
    assert result.score <= bar.score or result.status == "needs review"




@pytest.mark.parametrize("aid", list(HOSTILE))
def test_nothing_outside_the_working_copies_changed(aid, grading_batches):
    run = grading_batches(aid, GRADED_UP_TO.get(aid))
    assert run["before"] == run["after"], "the batch changed files of the course repo"
    assert not [p for p in hostile.HOST_TRACES if p.exists()], "a submission wrote outside its copy"
    leftovers = subprocess.run(["pgrep", "-f", f"sleep ({hostile.SPRAY[1]}|{hostile.ESCAPEE[2]})"],
                               capture_output=True, text=True).stdout
    assert not leftovers.strip(), f"processes a submission started are still running: {leftovers}"


def declared_statuses(aid):
    """{status: count} the fixtures of the home batch of `aid` declare (not read from its results):
    the reference, the untouched release, the wrong and right answers, the honest bars and the
    no-gain attacks graded; the review attacks needs review; each hostile case its `expect`."""
    stop = GRADED_UP_TO.get(aid)
    bars, attacks = cheating.cases(aid, stop)
    counts = Counter({"graded": 2 + len([c for c in CASES[aid] if c.stop_after == stop]) + len(bars)})
    counts.update("needs review" if a.expect == cheating.REVIEW else "graded" for a in attacks)
    counts.update(case.expect for case in HOSTILE.get(aid, []))
    return counts


@pytest.mark.parametrize("aid", list(CASES))
def test_summary_counts_every_status(aid, grading_batches):
    run = grading_batches(aid, GRADED_UP_TO.get(aid))
    n = declared_statuses(aid)
    assert sum(n.values()) == len(run["report"].results), "the batch holds other submissions than declared"
    expected = (f"statuses: {n['graded']} graded, {n['needs review']} needs review, {n['timed out']} timed out, "
                f"{n['crashed']} crashed, {n['malformed']} malformed, {n['grader error']} grader error, 0 skipped")
    assert expected in run["summary"], run["summary"]
    assert "limits: " in run["summary"]


@pytest.mark.parametrize("aid", list(CASES))
def test_feedback_never_shows_hidden_tests(aid, grading_batches):
    run = grading_batches(aid, GRADED_UP_TO.get(aid))
    report, source = run["report"], run["source"]
    _, hidden = nbs.secret_lines(source)
    assert hidden, "expected hidden tests in the source notebook"
    visible = {line.strip() for cell in source.cells if nbs.is_test(cell)
               for line in nbs.without_hidden_tests(cell.source).splitlines() if len(line.strip()) >= 12}
    files = sorted((report.out / "feedback").glob("*.html"))
    assert len(files) == sum(r.recorded for r in report.results.values())
    for path in files:
        text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))  # the code as a reader sees it
        assert any(line in text for line in visible), f"{path.name}: visible tests not found, check the method"
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{path.name} shows hidden test lines: {leaked[:3]}"
    for name, result in report.results.items():
        messages = " ".join(c.message for c in result.checks.values())
        assert not [line for line in hidden if line in messages], f"{name}: a verification message quotes a hidden test"
