"""The grading suite's batches, shared by the tests that grade or compare with them
(test_grading, test_gradescope, test_grading_modes, grade_smoke): which submissions each batch of
(assignment, prefix) holds and how it is graded. The tests get the batches through the
session-scoped fixture `grading_batches` (tests/conftest.py), each graded once per session."""

import hashlib
import io
import subprocess
from contextlib import redirect_stdout

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch
from coursekit.grading.cpus import cpu_budget
from coursekit.grading.report import print_summary
from coursekit.grading.sandbox import capabilities
from tests.submissions import (cheating, hostile, pneumonia_training, resnet_blocks, resnet_from_scratch,
                               unet_segmentation)

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


def report_table(node, run):
    """Attach the batch's table to one test report (printed at the end of the run)."""
    if not run.get("reported"):
        node.user_properties.append(("grading_table", run["table"]))
        run["reported"] = True


def grade_suite_batch(aid, tmp_path_factory, stop_after=None):
    """Grade one batch of (assignment, prefix). The batch up to GRADED_UP_TO (the whole notebook by
    default) also holds the reference, the untouched release and the hostile corpus."""
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
    return dict(report=report, source=source, work=tmp / "work", before=before,
                after=repo_fingerprint(), summary=summary.getvalue(),
                table=table(report) + (f"\n(graded up to cell {stop_after})" if stop_after else "")
                + "\n" + "\n".join(l for l in summary.getvalue().splitlines()
                                   if l.startswith(("statuses:", "time:"))))


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
