"""Autograder intake, checks and repairs, without running any student code (seconds)."""

import copy
import csv
import shutil
import stat
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import codescan, report
from coursekit.grading.results import GradeReport
from coursekit.grading.kernel_course import kernel_course
from coursekit.grading.intake import ArchiveLimits, clean_archive, collect_zip, find_submissions, precheck
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


# ---------------------------------------------------------------- unsafe LMS archives
def entry(name, mode=stat.S_IFREG | 0o644):
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def corrupt(archive, name):
    """Flip one byte of `name`'s stored data: its CRC no longer matches."""
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo(name)
    raw = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 10] ^= 0xFF
    archive.write_bytes(bytes(raw))


BAD = {   # kind: (entry name in the archive, what its reason says)
    "parent path": ("../evil_resnet_blocks.ipynb", "leaves the archive's folder"),
    "absolute path": ("/tmp/root_resnet_blocks.ipynb", "absolute path"),
    "symlink": ("link_resnet_blocks.ipynb", "symbolic link"),
    "zip bomb": ("bomb_resnet_blocks.ipynb", "zip bomb"),
    "corrupted": ("crc_resnet_blocks.ipynb", "cannot be read (BadZipFile: Bad CRC-32"),
}


def lms_zip(path, kinds, honest=("jdoe", "a.smith")):
    """An export with the honest students' notebooks and one bad entry of each of `kinds`."""
    text = nbformat.writes(RELEASE)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for student in honest:
            z.writestr(entry(f"{student}_resnet_blocks.ipynb"), text)
        for kind in kinds:
            name = BAD[kind][0]
            if kind == "symlink":
                z.writestr(entry(name, stat.S_IFLNK | 0o777), "/etc/passwd")
            elif kind == "zip bomb":
                z.writestr(entry(name), b"\0" * (17 * 2**20))
            elif kind == "corrupted":
                z.writestr(entry(name), text, compress_type=zipfile.ZIP_STORED)
            else:
                z.writestr(entry(name), text)
    if "corrupted" in kinds:
        corrupt(path, BAD["corrupted"][0])
    return path


@pytest.mark.parametrize("kind", list(BAD))
def test_clean_archive_skips_each_unsafe_entry_with_its_reason(kind, tmp_path):
    skipped = clean_archive(lms_zip(tmp_path / "export.zip", [kind]), tmp_path / "clean.zip")
    name, why = BAD[kind]
    assert list(skipped) == [name] and why in skipped[name], skipped
    with zipfile.ZipFile(tmp_path / "clean.zip") as z:
        assert sorted(z.namelist()) == ["a.smith_resnet_blocks.ipynb", "jdoe_resnet_blocks.ipynb"]
        assert z.read("jdoe_resnet_blocks.ipynb").decode() == nbformat.writes(RELEASE)
        assert all(stat.S_ISREG(i.external_attr >> 16) for i in z.infolist())


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_clean_archive_cleans_nested_zips_and_caps_the_total(tmp_path):
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr(entry("kim_resnet_blocks.ipynb"), "{}")
        z.writestr(entry("../../up_resnet_blocks.ipynb"), "{}")
        z.writestr(entry("sub\\..\\..\\win_resnet_blocks.ipynb"), "{}")        # Windows separators
    outer = tmp_path / "export.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, "folder/inner.zip")
        z.writestr(entry("fake.zip"), "not a zip")
        z.writestr(entry("old.tar.gz"), b"\x1f\x8b")
        z.writestr(entry("dup_resnet_blocks.ipynb"), "{}")
        z.writestr(entry("dup_resnet_blocks.ipynb"), "{}")
        z.writestr(entry("dup_resnet_blocks.ipynb/x"), "{}")
        z.writestr(entry("fifo", stat.S_IFIFO | 0o644), "")
        z.writestr(entry("big_resnet_blocks.ipynb"), "x" * 5000)
    skipped = clean_archive(outer, tmp_path / "clean.zip", ArchiveLimits(max_total=4000))
    assert set(skipped) == {"folder/inner.zip/../../up_resnet_blocks.ipynb",
                            "folder/inner.zip/sub\\..\\..\\win_resnet_blocks.ipynb", "fake.zip", "old.tar.gz",
                            "dup_resnet_blocks.ipynb", "dup_resnet_blocks.ipynb/x", "fifo",
                            "big_resnet_blocks.ipynb"}, skipped
    assert "not a zip archive" in skipped["fake.zip"] and "not a regular file" in skipped["fifo"]
    assert "uncompressed in all" in skipped["big_resnet_blocks.ipynb"]
    with zipfile.ZipFile(tmp_path / "clean.zip") as z:
        assert sorted(z.namelist()) == ["dup_resnet_blocks.ipynb", "folder/inner.zip"]
        with z.open("folder/inner.zip") as f, zipfile.ZipFile(f) as nested:
            assert nested.namelist() == ["kim_resnet_blocks.ipynb"]


def test_clean_archive_refuses_what_is_not_a_zip(tmp_path):
    (tmp_path / "export.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a zip archive: pass the zip your LMS exports"):
        clean_archive(tmp_path / "export.zip", tmp_path / "clean.zip")


def test_lms_zip_with_unsafe_entries_grades_the_rest_of_the_class(tmp_path):
    """collect_zip itself (nbgrader zip_collect): each bad entry skipped with its reason, the
    honest notebooks collected, nothing written outside the course."""
    course = tmp_path / "course"
    (course / "release" / A.id).mkdir(parents=True)
    shutil.copy(A.notebook("release"), course / "release" / A.id)
    shutil.copy(REPO / "nbgrader_config.py", course)
    found, skipped = collect_zip(A.id, lms_zip(tmp_path / "export.zip", list(BAD)), course)
    assert sorted(found) == ["a.smith", "jdoe"]
    assert nbformat.read(found["jdoe"], as_version=4) == RELEASE
    for kind, (name, why) in BAD.items():
        assert why in skipped.get(name, ""), (kind, skipped)
    assert set(skipped) == {name for name, _ in BAD.values()}
    bad_names = {Path(name).name for name, _ in BAD.values()}
    assert not [p for p in tmp_path.rglob("*") if p.name in bad_names]
    assert not Path("/tmp/root_resnet_blocks.ipynb").exists()


def test_skipped_entries_reach_status_csv(tmp_path):
    """What collect_zip skipped is listed in status.csv with status "skipped" and its reason."""
    skipped = clean_archive(lms_zip(tmp_path / "export.zip", list(BAD)), tmp_path / "clean.zip")
    report.write_tables(GradeReport(A.id, tmp_path, {}, {}, skipped))
    with (tmp_path / "status.csv").open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == {name for name, _ in BAD.values()}
    for name, why in BAD.values():
        assert rows[name]["status"] == "skipped" and why in rows[name]["reason"]
