"""Autograder intake, checks and repairs, without running any student code (seconds)."""

import copy
import zipfile

import nbformat
import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grade import collect_zip, course_dir, find_submissions, precheck, repair, tampering

A = load_course().assignments["resnet_blocks"]
RELEASE, SOURCE = nbs.read(A.notebook("release")), nbs.read(A.notebook("source"))


def test_lms_zip_maps_file_names_to_students_and_reports_the_rest(tmp_path):
    course = course_dir(tmp_path / "course", A.id)
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
    """Methods (`__init__`, `forward`) that both a check's helper class and the student's class
    define are no redefinition; the reference and the untouched release carry no flag."""
    a = load_course().assignments[aid]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    assert tampering(nbs.make_submission(release, nbs.reference_answers(source)), source) == []
    assert tampering(release, source) == []


def test_tampering_is_flagged_but_honest_code_is_not():
    patched = nbs.make_submission(RELEASE, {"residual_block": "import torch\ntorch.allclose = print\n"
                                            "setattr(np, 'isclose', print)\ndef check_block_shape(): pass"})
    flags = tampering(patched, SOURCE)
    assert "assigns torch.allclose" in flags and "calls setattr on np" in flags
    assert any("check_block_shape" in f for f in flags)
    nested = nbs.make_submission(RELEASE, {"residual_block": "if True:\n    def check_block_shape(): pass\n"
                                           "class Block:\n    def check_block_shape(self): pass"})
    assert tampering(nested, SOURCE) == ["redefines check_block_shape, which the checks use"]
