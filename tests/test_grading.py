"""The grading suite: each assignment's submissions graded exactly as `make grade` does it (nbgrader
autograde in the sandboxed kernel, then the verification run), in parallel.

Reference → full marks, graded, no flag; untouched release → 0 on every autograded cell; each wrong
answer loses points on its own cell's tests and keeps every other cell's, with no flag; right
answers written differently keep full marks, with no flag; hostile and broken submissions
(tests/submissions/hostile.py) get their expected status and change nothing outside their working
copy; every attack of the cheating corpus (tests/submissions/cheating.py) is marked needs review or
earns no more than the honest code under it. No feedback file shows a hidden-test line.
"""

import hashlib
import html
import io
import re
import subprocess
from contextlib import redirect_stdout

import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch
from coursekit.grading.cpus import cpu_budget
from coursekit.grading.report import print_summary
from coursekit.grading.results import STATUSES
from coursekit.grading.sandbox import capabilities
from tests.submissions import (cheating, hostile, pneumonia_training, resnet_blocks, resnet_from_scratch,
                               unet_segmentation)

pytestmark = pytest.mark.slow
CASES = {"resnet_blocks": resnet_blocks.CASES, "pneumonia_training": pneumonia_training.CASES,
         "unet_segmentation": unet_segmentation.CASES, "resnet_from_scratch": resnet_from_scratch.CASES}
HOSTILE = {"resnet_blocks": hostile.available(capabilities())}
# Assignments whose reference and untouched release are graded up to a cell before a long training
# part, in one batch with the fixtures stopping there. resnet_from_scratch: no graded cell follows.
# pneumonia_training: one (the trained ResNet18's test performance) follows ResNet18's 8 epochs, which
# nbval runs on the source, hidden tests included; the grader's handling of that part (the training
# cells' artefacts, the verification run's check of the trained model) is graded whole on the honest
# submissions of the full-notebook batch (`test_training_part_is_graded_whole`). One training run of
# the reference instead of two: on a slow 2-core machine this one alone ran past the 600 s cell limit.
GRADED_UP_TO = {"resnet_from_scratch": resnet_from_scratch.LAST_CHECK,
                "pneumonia_training": pneumonia_training.AFTER_CAM}
_reports = {}
prefix = nbs.prefix      # the graded prefix of a notebook (the other grading tests import it from here)
# Sandbox workers per batch: this pytest worker's share of the cores (conftest sets $COURSEKIT_CPUS under
# pytest-xdist), as `make grade` counts them.
JOBS = cpu_budget()


def repo_fingerprint():
    """Hash of every file git tracks plus the list of untracked ones: nothing may change it."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True).stdout.split(b"\0")
    digest = hashlib.sha256()
    for name in filter(None, tracked):
        path = REPO / name.decode()
        digest.update(name + (path.read_bytes() if path.is_file() else b"<missing>"))
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                               capture_output=True, text=True).stdout
    return digest.hexdigest(), untracked


def batch_of(params):
    """The xdist group of a parametrized grading test: its batch (conftest)."""
    aid = params["aid"]
    item = params.get("case") or params.get("attack")
    stop_after = getattr(item, "stop_after", GRADED_UP_TO.get(aid))   # hostile cases: the home batch
    stop_after = params.get("stop_after", stop_after)                  # a test that names its batch
    return f"grading:{aid}:{stop_after}"


def report_table(node, run):
    """Attach the batch's table to one test report (printed at the end of the run)."""
    if not run.get("reported"):
        node.user_properties.append(("grading_table", run["table"]))
        run["reported"] = True


def graded(aid, tmp_path_factory, stop_after=None):
    """Grade one batch per (assignment, prefix) once per session. The batch up to GRADED_UP_TO
    (the whole notebook by default) also holds the reference, the untouched release and the
    hostile corpus."""
    key = (aid, stop_after)
    if key not in _reports:
        assignment = load_course().assignments[aid]
        source = nbs.prefix(nbs.read(assignment.notebook("source")), stop_after)
        release = nbs.prefix(nbs.read(assignment.notebook("release")), stop_after)
        reference = nbs.reference_answers(source)
        tmp = tmp_path_factory.mktemp(f"{aid}-{stop_after or 'all'}")
        folder = tmp / "submissions"
        folder.mkdir()
        home = stop_after == GRADED_UP_TO.get(aid)
        hostile_cases = HOSTILE.get(aid, []) if home else []
        if home:
            rest = graded_after(aid, stop_after)
            assert not rest or cheating.cases(aid, None)[0], \
                f"graded cells after {stop_after} ({rest}) and no honest submission graded whole"
            nbs.write(nbs.make_submission(release, reference), folder / "reference.ipynb")
            nbs.write(release, folder / "untouched.ipynb")
        for case in CASES[aid]:
            if case.stop_after == stop_after:
                nb = nbs.make_submission(release, {**reference, case.cell: case.code})
                nbs.write(nb, folder / f"{case.name}.ipynb")
        for case in hostile_cases:
            (folder / f"{case.name}.ipynb").write_bytes(case.build(release, reference))
        bars, attacks = cheating.cases(aid, stop_after)
        for bar in bars:
            (folder / f"{bar.name}.ipynb").write_bytes(bar.build(reference, release))
        for attack in attacks:
            (folder / f"{attack.name}.ipynb").write_bytes(cheating.build(attack, reference, release))
        source_path = None
        if stop_after is not None:
            source_path = tmp / f"{aid}.ipynb"
            nbs.write(source, source_path)
        before = repo_fingerprint()
        report = grade_batch(aid, folder, out=tmp / "results", work=tmp / "work", source=source_path,
                             limits=hostile.LIMITS if aid in HOSTILE else None, jobs=JOBS)
        summary = io.StringIO()
        with redirect_stdout(summary):
            print_summary(report)
        _reports[key] = dict(report=report, source=source, work=tmp / "work", before=before,
                             after=repo_fingerprint(), summary=summary.getvalue(),
                             table=table(report) + (f"\n(graded up to cell {stop_after})" if stop_after else "")
                             + "\n" + "\n".join(l for l in summary.getvalue().splitlines()
                                                 if l.startswith(("statuses:", "time:"))))
    return _reports[key]


def graded_after(aid, stop_after):
    """Grade ids of the graded cells after cell `stop_after` of the source notebook."""
    if stop_after is None:
        return []
    cells = nbs.read(load_course().assignments[aid].notebook("source")).cells
    ids = [c.id for c in cells]
    return [nbs.grade_id(c) for c in cells[ids.index(stop_after) + 1:] if nbs.nbgrader(c).get("grade")]


def cell_totals(report, student, source):
    """{solution grade_id: (score, max)} summed over that solution's test cells."""
    result = report.results[student]
    totals = {}
    for cell in source.cells:
        if nbs.is_solution(cell) and cell.cell_type == "code":
            gid = nbs.grade_id(cell)
            tests = [nbs.grade_id(t) for t in nbs.test_cells_of(source, gid)]
            totals[gid] = (sum(result.cells.get(t, 0) for t in tests),
                           sum(report.cell_max[t] for t in tests))
    return totals


def table(report):
    cells = list(report.cell_max)
    short = [c.removeprefix("test_") for c in cells]
    width = max(len(s) for s in report.results)
    lines = [f"{report.assignment} ({report.jobs} workers, {report.seconds:g} s):",
             f"{'submission':<{width}} " + " ".join(short) + "  total  status"]
    for r in report.results.values():
        scores = " ".join(f"{r.cells.get(c, 0):>{len(s)}g}" for c, s in zip(cells, short))
        lines.append(f"{r.student:<{width}} {scores}  {r.score:g}/{r.max_score:g}  {r.status}")
    return "\n".join(lines)


@pytest.mark.parametrize("aid", list(CASES))
def test_reference_gets_full_marks(aid, tmp_path_factory, request):
    run = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))
    report_table(request.node, run)
    report = run["report"]
    ref = report.results["reference"]
    assert ref.status == "graded" and ref.score == ref.max_score > 0, (ref.reason, ref.review, table(report))
    assert not ref.reason and not ref.review, f"the reference was repaired or flagged: {ref.reason} {ref.review}"


@pytest.mark.parametrize("aid,stop_after", [(aid, None) for aid, stop in GRADED_UP_TO.items()
                                            if graded_after(aid, stop)])
def test_training_part_is_graded_whole(aid, stop_after, tmp_path_factory, request):
    """Where the reference is graded up to a cell before training, the honest submissions graded
    whole (the cheating corpus's bars) go through the training cells' export and the verification
    run's checks of the trained models: graded, no flag, each later graded cell run by the verification."""
    run = graded(aid, tmp_path_factory, stop_after)
    report_table(request.node, run)
    report, later = run["report"], graded_after(aid, GRADED_UP_TO[aid])
    bars = cheating.cases(aid, None)[0]
    assert bars, f"{aid}: no honest submission is graded whole"
    for bar in bars:
        result = report.results[bar.name]
        assert result.status == "graded" and not result.review, (bar.name, result.status, result.reason)
        assert all(result.checks[gid].ran for gid in later), (bar.name, result.checks)


@pytest.mark.parametrize("aid", list(CASES))
def test_untouched_release_gets_zero(aid, tmp_path_factory):
    report = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))["report"]
    untouched = report.results["untouched"]
    assert untouched.status == "graded" and untouched.score == 0, (untouched.review, table(report))


@pytest.mark.parametrize("aid,case", [(aid, c) for aid, cases in CASES.items() for c in cases],
                         ids=lambda v: getattr(v, "name", v))
def test_fixture_scores_as_expected(aid, case, tmp_path_factory, request):
    run = graded(aid, tmp_path_factory, case.stop_after)
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
def test_hostile_submission_is_contained(aid, case, tmp_path_factory):
    run = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))
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
def test_cheating_earns_nothing(aid, attack, tmp_path_factory, request):
    """Marked needs review, or no more points than the honest code under the attack (graded)."""
    run = graded(aid, tmp_path_factory, attack.stop_after)
    report_table(request.node, run)
    result, bar = run["report"].results[attack.name], run["report"].results[attack.honest]
    request.node.user_properties.append(("cheating_row", (attack.name, (
        attack.cls, attack.expect, result.status, result.score, bar.score, result.max_score,
        "; ".join(result.review)[:90]))))
    assert bar.status == "graded" and not bar.review, f"the honest bar {bar.name}: {bar.status} {bar.review}"
    if attack.expect == cheating.REVIEW:
        assert result.status == "needs review", f"{attack.name}: {result.status}, {result.score}/{result.max_score}"
    else:
        assert result.status == "graded" and not result.review, f"{attack.name}: {result.status} {result.review}"
        assert result.score <= bar.score, f"{attack.name}: {result.score} > honest {bar.score}"
    assert result.score <= bar.score or result.status == "needs review"




@pytest.mark.parametrize("aid", list(HOSTILE))
def test_nothing_outside_the_working_copies_changed(aid, tmp_path_factory):
    run = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))
    assert run["before"] == run["after"], "the batch changed files of the course repo"
    assert not [p for p in hostile.HOST_TRACES if p.exists()], "a submission wrote outside its copy"
    leftovers = subprocess.run(["pgrep", "-f", "sleep 424[23]"], capture_output=True, text=True).stdout
    assert not leftovers.strip(), f"processes a submission started are still running: {leftovers}"


@pytest.mark.parametrize("aid", list(CASES))
def test_summary_counts_every_status(aid, tmp_path_factory):
    run = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))
    results = run["report"].results.values()
    expected = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in STATUSES)
    assert f"statuses: {expected}" in run["summary"]
    assert "limits: " in run["summary"]


@pytest.mark.parametrize("aid", list(CASES))
def test_feedback_never_shows_hidden_tests(aid, tmp_path_factory):
    run = graded(aid, tmp_path_factory, GRADED_UP_TO.get(aid))
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
