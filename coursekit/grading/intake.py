"""Intake: which notebook is whose (a folder, or the zip an LMS exports), and whether it can be
graded at all (empty, not JSON, too large: *malformed*)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from .. import nbgrader_run
from ..config import load_course

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def find_submissions(assignment_id: str, folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """{student: notebook} from `<folder>/<student>.ipynb` or `<folder>/<student>/<id>.ipynb`,
    and {file name: why it was skipped}."""
    found, skipped = {}, {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            notebook, student = path / f"{assignment_id}.ipynb", path.name
            if not notebook.exists():
                skipped[path.name] = f"no {assignment_id}.ipynb inside"
                continue
        elif path.suffix == ".ipynb":
            notebook, student = path, path.stem
        else:
            skipped[path.name] = "not a notebook"
            continue
        if not STUDENT_ID.match(student):
            skipped[path.name] = "name is not a usable student id"
        elif student in found:
            skipped[path.name] = f"second submission for {student}"
        else:
            found[student] = notebook
    return found, skipped


def collect_zip(assignment_id: str, archive: Path, course: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """An LMS export: nbgrader zip_collect maps file names to student ids (course.toml's
    `submission_filename` regexp); files it cannot map are reported as skipped."""
    pattern = load_course().submission_filename
    downloaded = course / "downloaded" / assignment_id
    shutil.rmtree(downloaded, ignore_errors=True)
    shutil.rmtree(course / "submitted", ignore_errors=True)
    (downloaded / "archive").mkdir(parents=True)
    shutil.copy(archive, downloaded / "archive" / archive.name)
    nbgrader_run.cli("zip_collect", assignment_id, "--force",
                     f"--FileNameCollectorPlugin.named_regexp={pattern}", cwd=course)
    found = {p.parent.parent.name: p
             for p in (course / "submitted").glob(f"*/{assignment_id}/{assignment_id}.ipynb")}
    names = re.compile(pattern)
    skipped = {}
    for path in sorted((downloaded / "extracted").rglob("*")):
        if path.is_file():
            m = names.match(str(path))
            if not m or m.group("student_id") not in found:
                skipped[path.name] = ("file name does not match submission_filename"
                                      if not m else "not collected by nbgrader zip_collect")
    return found, skipped


def precheck(path: Path, max_bytes: int) -> tuple[nbformat.NotebookNode | None, str]:
    """(notebook, "") or (None, why it cannot be graded at all: malformed)."""
    size = path.stat().st_size
    if size == 0:
        return None, "empty file"
    if size > max_bytes:
        return None, f"file too large ({size / 2**20:.0f} MB > {max_bytes / 2**20:.0f} MB)"
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:                     # any parse or schema error: report, don't crash
        return None, f"not a valid notebook ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    return nb, ""
