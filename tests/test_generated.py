"""release/ and solutions/ are what nbgrader makes of source/ today, and leak nothing."""

import dataclasses
import re

import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.build import cross_release_leaks, staleness
from coursekit.config import load_course
from coursekit.nbgrader_ext import starter_code

COURSE = load_course()
IDS = list(COURSE.assignments)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def notebooks(aid):
    a = COURSE.assignments[aid]
    return nbs.read(a.notebook("source")), nbs.read(a.notebook("release")), nbs.read(a.notebook("solutions"))


@pytest.mark.slow                       # compiles each assignment with nbgrader (seconds each)
@pytest.mark.parametrize("aid", IDS)
def test_generated_notebooks_are_fresh(aid):
    problems = staleness(COURSE.assignments[aid])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("aid", IDS)
def test_release_leaks_nothing(aid):
    source, release, _ = notebooks(aid)
    text = "\n".join(cell.source for cell in release.cells)
    solution, hidden = nbs.secret_lines(source)
    assert solution and hidden
    assert not [m for m in MARKERS if m in text], "nbgrader markers left in the release"
    assert not [l for l in solution if l in text], "solution code in the release"
    assert not [l for l in hidden if l in text], "hidden test code in the release"
    for cell in release.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"outputs stored in {cell.id}"


@pytest.mark.parametrize("aid", IDS)
def test_release_stubs_and_locks(aid):
    source, release, _ = notebooks(aid)
    released = nbs.cells_by_grade_id(release)
    for cell in source.cells:
        gid = nbs.grade_id(cell)
        if nbs.is_solution(cell) and cell.cell_type == "code":
            stub = released[gid].source
            if starter_code(cell) is not None:   # find-and-fix: starts from the given (buggy) code
                assert stub == starter_code(cell) != nbs.without_markers(cell.source), gid
            else:
                assert "raise NotImplementedError()" in stub and "TODO: your code here" in stub, gid
            assert nbs.test_cells_of(source, gid), f"solution cell {gid} has no test cell"
        if nbs.is_test(cell) or nbs.nbgrader(cell).get("locked"):
            assert released[gid].metadata.get("editable") is False, f"{gid} is not locked in the release"
            assert released[gid].metadata.get("deletable") is False, f"{gid} can be deleted in the release"
    assert [c.id for c in release.cells] == [c.id for c in source.cells], "cell ids must survive compilation"


@pytest.mark.parametrize("aid", IDS)
def test_release_opens_in_colab(aid):
    _, release, _ = notebooks(aid)
    badge = release.cells[0].source
    url = f"https://colab.research.google.com/github/{COURSE.github_repo}/blob/{COURSE.branch}/release/{aid}/{aid}.ipynb"
    assert url in badge and "colab-badge.svg" in badge
    setup = release.cells[[c.cell_type for c in release.cells].index("code")]
    assert setup.metadata["coursekit"]["generated"] == "setup", "the first code cell must be the setup cell"


@pytest.mark.parametrize("aid", IDS)
def test_solutions_are_clean_executed_keys(aid):
    source, _, solutions = notebooks(aid)
    text = "\n".join(cell.source for cell in solutions.cells)
    _, hidden = nbs.secret_lines(source)
    assert not [m for m in MARKERS if m in text], "nbgrader markers left in the answer key"
    assert not [l for l in hidden if l in text], "hidden tests in the answer key"
    for cell in solutions.cells:
        assert "nbgrader" not in cell.metadata, f"nbgrader metadata left in {cell.id}"
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{cell.id} was not executed"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.id} failed in the answer key: {errors[0].get('evalue')}"
    test_ids = {nbs.grade_id(c) for c in source.cells if nbs.is_test(c)}
    for cell in solutions.cells:
        if cell.id in test_ids:
            out = "".join(o.get("text", "") for o in cell.outputs)
            assert re.search(rf"{cell.id} passed", out), f"{cell.id} did not pass in the answer key"


@pytest.mark.parametrize("aid", IDS)
def test_answer_keys_store_what_a_reader_sees(aid):
    """A cell's output streams are stored merged, with nothing a carriage return overwrote: a
    progress bar appears once, in its last state (a renderer that does not merge them shows each state)."""
    _, _, solutions = notebooks(aid)
    for cell in solutions.cells:
        outputs = cell.get("outputs", [])
        for a, b in zip(outputs, outputs[1:]):
            assert not (a.output_type == b.output_type == "stream" and a.name == b.name), \
                f"{cell.id}: consecutive {a.name} outputs stored apart (make release merges them)"
        for out in (o for o in outputs if o.output_type == "stream"):
            assert not re.search(r"\r[^\n]", out.text), f"{cell.id}: {out.name} keeps text a carriage return overwrote"
            unfinished = [line for line in out.text.splitlines()
                          if re.search(r"\d+/\d+ \[", line) and not re.search(r"100%\|.*\| (\d+)/\1 ", line)]
            assert not unfinished, f"{cell.id}: progress bar stored unfinished: {unfinished[0]}"


def test_no_release_shows_an_answer_before_its_deadline():
    """Solution lines of one assignment reach another's release only where course.toml orders that
    release after the first one's deadline (release_after); `make release` runs the same check."""
    problems = cross_release_leaks(COURSE)
    assert not problems, "\n".join(problems)


def test_cross_release_check_bites_without_release_after():
    """Notebook 2's release shows Notebook 1's adapt_resnet18: unordered, that is a failure."""
    unordered = dataclasses.replace(COURSE, assignments={
        aid: dataclasses.replace(a, release_after=()) for aid, a in COURSE.assignments.items()})
    problems = cross_release_leaks(unordered)
    assert len(problems) == 1 and problems[0].startswith(
        "release/pneumonia_training shows 3 solution line(s) of resnet_blocks"), problems
    assert "model.fc = nn.Linear(model.fc.in_features, num_classes)" in problems[0]
    assert 'release_after = ["resnet_blocks"]' in problems[0]


def test_release_after_names_earlier_assignments(tmp_path):
    toml = (REPO / "course.toml").read_text().replace(
        'release_after = ["resnet_blocks"]', 'release_after = ["resnet_from_scratch"]')
    (tmp_path / "course.toml").write_text(toml)
    with pytest.raises(ValueError, match="release_after: 'resnet_from_scratch' is not an assignment "
                                         "listed before 'pneumonia_training'"):
        load_course(tmp_path / "course.toml")


def test_a_failed_answer_key_is_not_called_up_to_date(tmp_path, monkeypatch):
    """`make release` after a key that failed (a cell timed out on a busy machine) builds it again:
    the failed key is written for reading, without the source hash that would make it 'fresh'."""
    from coursekit import build

    assignment = COURSE.assignments["resnet_blocks"]
    source = assignment.notebook("source", tmp_path)
    source.parent.mkdir(parents=True)
    source.write_bytes(assignment.notebook("source").read_bytes())

    def fake_nbgrader(command, aid, *args, cwd, env=None):
        step = "release" if command == "generate_assignment" else "solutions"
        nb = nbs.read(source)
        if step == "solutions":
            cell = next(c for c in nb.cells if c.cell_type == "code" and c.id != "setup")
            cell.outputs = [nbs.nbformat.v4.new_output("error", ename="CellTimeoutError", evalue="", traceback=[])]
        path = assignment.notebook(step, cwd)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbs.write(nb, path)

    monkeypatch.setattr(build.nbgrader_run, "cli", fake_nbgrader)
    with pytest.raises(RuntimeError, match="CellTimeoutError"):
        build.compile_assignment(assignment, tmp_path)
    assert assignment.notebook("solutions", tmp_path).exists()
    assert not build.is_fresh(assignment, tmp_path)
