"""Autograder intake, checks and repairs, without running any student code (seconds)."""

import copy
import zipfile

import nbformat
import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import codescan
from coursekit.grading.batch import kernel_course, static_review
from coursekit.grading.intake import collect_zip, find_submissions, precheck
from coursekit.grading.repair import repair

A = load_course().assignments["resnet_blocks"]
RELEASE, SOURCE = nbs.read(A.notebook("release")), nbs.read(A.notebook("source"))


@pytest.mark.slow                       # runs nbgrader generate_assignment and zip_collect
def test_lms_zip_maps_file_names_to_students_and_reports_the_rest(tmp_path):
    course = kernel_course(tmp_path / "course", A.id, SOURCE)
    archive = tmp_path / "export.zip"
    text = nbformat.writes(RELEASE)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("jdoe_resnet_blocks.ipynb", text)
        z.writestr("a.smith_resnet_blocks.ipynb", text)
        z.writestr("no student id here.ipynb", text)
        z.writestr("jdoe_notes.txt", "not a notebook")
    found, skipped = collect_zip(A.id, archive, course)
    assert sorted(found) == ["a.smith", "jdoe"]
    assert all(path.name == "resnet_blocks.ipynb" for path in found.values())
    assert "no student id here.ipynb" in skipped and "jdoe_notes.txt" in skipped


def test_folder_intake_reports_unusable_names(tmp_path):
    for name in ["jdoe.ipynb", "bad name!.ipynb", "readme.txt"]:
        (tmp_path / name).write_text(nbformat.writes(RELEASE))
    (tmp_path / "asmith").mkdir()
    (tmp_path / "asmith" / "resnet_blocks.ipynb").write_text(nbformat.writes(RELEASE))
    (tmp_path / "empty_folder").mkdir()
    found, skipped = find_submissions(A.id, tmp_path)
    assert sorted(found) == ["asmith", "jdoe"]
    assert set(skipped) == {"bad name!.ipynb", "readme.txt", "empty_folder"}


def test_precheck_refuses_what_cannot_be_a_notebook(tmp_path):
    cases = {"empty": b"", "invalid": b"{not json", "big": b"x" * 2048}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert precheck(tmp_path / "empty", 1024)[1] == "empty file"
    assert "too large" in precheck(tmp_path / "big", 1024)[1]
    assert "not a valid notebook" in precheck(tmp_path / "invalid", 1024)[1]
    (tmp_path / "ok.ipynb").write_text(nbformat.writes(RELEASE))
    nb, reason = precheck(tmp_path / "ok.ipynb", 2**24)
    assert nb is not None and reason == ""


def test_repair_restores_metadata_duplicates_and_deleted_tests():
    nb = copy.deepcopy(RELEASE)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    assert repair(nb, RELEASE) == ["nbgrader metadata of %d cells restored from their ids"
                                   % sum(1 for c in RELEASE.cells if nbs.grade_id(c))]
    assert nbs.cells_by_grade_id(nb).keys() == nbs.cells_by_grade_id(RELEASE).keys()

    nb = copy.deepcopy(RELEASE)
    twin = copy.deepcopy(nbs.cells_by_grade_id(nb)["residual_block"])
    twin.id = "residual_block-copy"
    nb.cells.insert(5, twin)
    nb.cells = [c for c in nb.cells if c.id != "test_residual_block_shapes"]
    notes = repair(nb, RELEASE)
    assert "a copy of residual_block kept as a plain cell" in notes
    assert "deleted cell test_residual_block_shapes restored" in notes
    ids = [nbs.grade_id(c) for c in nb.cells if nbs.grade_id(c)]
    assert ids.count("residual_block") == 1 and "test_residual_block_shapes" in ids
    assert ids.index("test_residual_block_shapes") > ids.index("residual_block")


@pytest.mark.parametrize("aid", list(load_course().assignments))
def test_reference_answers_are_not_flagged(aid):
    """The static review finds nothing in the reference answers or the untouched release."""
    a = load_course().assignments[aid]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    libraries = codescan.library_names([c.source for c in source.cells if not nbs.is_solution(c)])
    for nb in (nbs.make_submission(release, nbs.reference_answers(source)), release):
        for cell in nb.cells:
            if cell.cell_type == "code" and nbs.is_solution(cell):
                assert codescan.scan(cell.source, libraries) == [], cell.id
