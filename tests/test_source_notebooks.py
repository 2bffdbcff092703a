"""Source notebooks are stored as code: tidy, conventional grade ids, well-formed test cells."""

import re

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course

COURSE = load_course()
IDS = list(COURSE.assignments)


def source(aid):
    return nbs.read(COURSE.assignments[aid].notebook("source"))


def test_every_assignment_has_a_source_notebook():
    folders = sorted(p.name for p in (COURSE.assignments[IDS[0]].notebook("source").parents[1]).iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    assert folders == sorted(IDS), "source/ folders and course.toml assignments must match"


@pytest.mark.parametrize("aid", IDS)
def test_source_is_tidy(aid):
    nb = source(aid)
    assert nb == nbs.tidy(nb, COURSE.assignments[aid]), (
        f"source/{aid} has outputs, stray metadata, missing ids or a stale setup cell: run `make tidy`")


@pytest.mark.parametrize("aid", IDS)
def test_cell_ids_are_stable_names(aid):
    ids = [c.id for c in source(aid).cells]
    assert len(ids) == len(set(ids))
    random_looking = [i for i in ids if re.fullmatch(r"(cell-)?[0-9a-f]{8,}", i)]
    assert not random_looking, f"auto-generated cell ids: {random_looking}"


@pytest.mark.parametrize("aid", IDS)
def test_grade_ids_follow_the_convention(aid):
    nb = source(aid)
    solutions = [nbs.grade_id(c) for c in nb.cells if nbs.is_solution(c)]
    for cell in nb.cells:
        gid = nbs.grade_id(cell)
        if gid:
            assert cell.id == gid, f"cell id {cell.id} should equal its grade_id {gid}"
        if nbs.is_test(cell):
            owners = [s for s in solutions if re.fullmatch(rf"test_{s}(_[a-z0-9_]+)?", gid)]
            assert owners, f"test cell {gid} is not named test_<solution grade_id>[_<aspect>]"
            first = cell.source.lstrip().splitlines()[0]
            assert first.startswith('"""') and first.endswith('"""'), f"{gid}: start with a one-line docstring"
            assert f'print("{gid} passed")' in cell.source, f"{gid}: end by printing '{gid} passed'"
            assert cell.metadata["nbgrader"].get("points", 0) > 0


@pytest.mark.parametrize("aid", IDS)
def test_graded_cells_match_the_spec(aid):
    """The assignment's graded cells are the ones COURSE_SPEC fixes (instructors rely on the names)."""
    expected = {"resnet_blocks": {"residual_block", "plain_vs_residual", "adapt_resnet18"},
                "pneumonia_training": {"train_one_epoch", "evaluate", "train_resnet", "grad_cam"},
                "resnet_from_scratch": {"bottleneck_block", "preact_block", "make_layer", "fixed_block", "fixed_block_bugs",
                                        "quiz"},
                "unet_segmentation": {"double_conv", "unet", "resnet_unet", "dice_coefficient", "train_unet"}}
    nb = source(aid)
    assert {nbs.grade_id(c) for c in nb.cells if nbs.is_solution(c)} == expected[aid]


@pytest.mark.parametrize("aid", IDS)
def test_plumbing_is_collapsed_in_the_student_version(aid):
    """Setup and tool cells show a title instead of their code in JupyterLab and in Colab; the
    cells a student works in (answers, checks, lesson code) show their code."""
    release = nbs.read(COURSE.assignments[aid].notebook("release"))
    collapsed = {c.id: c for c in release.cells if c.metadata.get("jupyter", {}).get("source_hidden")}
    assert "setup" in collapsed, f"release/{aid}: the setup cell should be collapsed"
    for cell_id, cell in collapsed.items():
        assert cell.metadata.get("cellView") == "form" and cell.source.startswith(nbs.TITLE_PREFIX), (
            f"release/{aid} cell {cell_id}: collapsed for JupyterLab but not for Colab "
            "(cellView: form and a first line '# @title ...')")
        assert not (nbs.is_solution(cell) or nbs.is_test(cell)), (
            f"release/{aid} cell {cell_id}: a graded cell must show its code")
    titled = {c.id for c in release.cells if c.cell_type == "code" and c.source.startswith(nbs.TITLE_PREFIX)}
    assert titled == set(collapsed), f"release/{aid}: '# @title' cells that are not collapsed: {titled - set(collapsed)}"
