"""Intake: which notebook is whose (a folder, or the zip an LMS exports), and whether it can be
graded at all (empty, not JSON, too large: *malformed*). An LMS zip is checked entry by entry
before nbgrader unpacks it: unsafe or unreadable entries are skipped with their reason."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .. import nbgrader_run
from ..config import load_course
from . import layout

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


def collect_zip(assignment_id: str, archive: Path, course: Path,
                limits: ArchiveLimits | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """An LMS export: nbgrader zip_collect maps file names to student ids (course.toml's
    `submission_filename` regexp) in a copy of the archive that holds only its safe entries
    (`clean_archive`); unsafe entries and files it cannot map are reported as skipped."""
    pattern = load_course().submission_filename
    downloaded = course / "downloaded" / assignment_id
    shutil.rmtree(downloaded, ignore_errors=True)
    shutil.rmtree(course / "submitted", ignore_errors=True)
    (downloaded / "archive").mkdir(parents=True)
    name = archive.name if archive.suffix == ".zip" else f"{archive.stem}.zip"
    unsafe = clean_archive(archive, downloaded / "archive" / name, limits or ArchiveLimits())
    nbgrader_run.cli("zip_collect", assignment_id, "--force",
                     f"--FileNameCollectorPlugin.named_regexp={pattern}", cwd=course)
    found = layout.by_student(course, "submitted", assignment_id)
    names = re.compile(pattern)
    skipped = dict(unsafe)
    for path in sorted((downloaded / "extracted").rglob("*")):
        if path.is_file():
            m = names.match(str(path))
            if not m or m.group("student_id") not in found:
                skipped[path.name] = ("file name does not match submission_filename"
                                      if not m else "not collected by nbgrader zip_collect")
    return found, skipped


# ---------------------------------------------------------------- archive entries
# zip_collect unpacks what ends in .zip or .gz (ExtractorPlugin.zip_ext), also inside the archive:
# a zip inside is cleaned like the archive, a .gz inside is left out.


@dataclass(frozen=True)
class ArchiveLimits:
    """What an LMS archive may hold (a zip bomb passes them)."""

    max_ratio: float = 100            # uncompressed / compressed, for an entry above ratio_floor
    ratio_floor: int = 16 * 2**20     # smaller entries are never a bomb, whatever their ratio
    max_total: int = 4 * 2**30        # all entries together, uncompressed
    max_depth: int = 3                # zips inside zips (zip_collect unpacks them too)


def clean_archive(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> dict[str, str]:
    """Write to `dest` a zip of `archive`'s safe entries (each read and CRC-checked, zips inside
    it cleaned the same way); return {entry: why it was left out} for the rest."""
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"{archive} is not a zip archive: pass the zip your LMS exports, or a folder "
                         f"of <student>.ipynb or <student>/<id>.ipynb")
    skipped: dict[str, str] = {}
    budget = [limits.max_total]
    try:
        zin = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(f"{archive}: its list of entries cannot be read ({type(err).__name__}: {err}); "
                         f"export the archive again") from err
    with zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        _copy_safe_entries(zin, zout, "", 1, limits, budget, skipped, dest.parent)
    return skipped


def _copy_safe_entries(zin: zipfile.ZipFile, zout: zipfile.ZipFile, label: str, depth: int,
                       limits: ArchiveLimits, budget: list[int], skipped: dict[str, str], scratch: Path) -> None:
    files: set[str] = set()
    folders: set[str] = set()
    for info in zin.infolist():
        entry = label + info.filename
        why, name = entry_problem(info, limits)
        if why:
            skipped[entry] = why
            continue
        if name is None:                          # a folder: implied by the files in it
            continue
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        if name in files or name in folders or parents & files:
            skipped[entry] = ("unsafe archive entry: a second entry with this path, or a file and a folder "
                              "of one name; not extracted (the first one is kept)")
            continue
        if info.file_size > budget[0]:
            skipped[entry] = (f"archive too large: its entries pass {limits.max_total / 2**30:g} GiB "
                              f"uncompressed in all; not extracted (grade the rest from a folder of notebooks)")
            continue
        if os.path.splitext(name)[1] == ".gz":
            skipped[entry] = ("a .gz archive inside the export: not unpacked (only zips are); extract it "
                              "yourself and grade the folder")
            continue
        with tempfile.SpooledTemporaryFile(max_size=32 * 2**20, dir=scratch) as data:
            try:
                with zin.open(info) as f:                 # at most file_size bytes, CRC checked at the end
                    shutil.copyfileobj(f, data, 2**20)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                    NotImplementedError, ValueError) as err:
                skipped[entry] = (f"archive entry cannot be read ({type(err).__name__}: {err}); not "
                                  f"extracted (export the archive again, or ask the student to re-submit)")
                continue
            budget[0] -= info.file_size
            data.seek(0)
            if os.path.splitext(name)[1] == ".zip":
                why = _clean_inner(data, entry, depth, limits, budget, skipped, scratch, zout, name, info)
                if why:
                    skipped[entry] = why
                    continue
            else:
                _write(zout, name, info, data)
        files.add(name)
        folders |= parents


def _clean_inner(data, entry: str, depth: int, limits: ArchiveLimits, budget: list[int],
                 skipped: dict[str, str], scratch: Path, zout: zipfile.ZipFile, name: str,
                 info: zipfile.ZipInfo) -> str:
    """A zip inside the archive (zip_collect unpacks it too): written cleaned; "" or why it was not."""
    if depth >= limits.max_depth:
        return f"zips nested more than {limits.max_depth} deep: not unpacked; extract it yourself"
    if not zipfile.is_zipfile(data):
        return "named .zip but not a zip archive: not extracted"
    with tempfile.SpooledTemporaryFile(max_size=32 * 2**20, dir=scratch) as cleaned:
        try:
            with zipfile.ZipFile(data) as inner, zipfile.ZipFile(cleaned, "w", zipfile.ZIP_DEFLATED,
                                                                 compresslevel=1) as inner_out:
                _copy_safe_entries(inner, inner_out, entry + "/", depth + 1, limits, budget, skipped, scratch)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
            return f"zip inside the archive cannot be read ({type(err).__name__}: {err}); not extracted"
        cleaned.seek(0)
        _write(zout, name, info, cleaned)
    return ""


def entry_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> tuple[str, str | None]:
    """(why the entry is unsafe, "") or ("", its normalised path; None for a folder)."""
    raw = info.filename.replace("\\", "/")      # zips made on Windows may use backslashes
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        return "unsafe archive entry: absolute path; not extracted", None
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "unsafe archive entry: its path leaves the archive's folder (..); not extracted", None
    if raw.endswith("/") or kind == stat.S_IFDIR or info.external_attr & 0x10:
        return "", None
    if not parts:
        return "unsafe archive entry: no file name; not extracted", None
    if kind == stat.S_IFLNK:
        return "unsafe archive entry: a symbolic link; not extracted", None
    if kind and kind != stat.S_IFREG:
        return f"unsafe archive entry: not a regular file (mode {mode:o}); not extracted", None
    if any(len(p.encode()) > 255 for p in parts):
        return "unsafe archive entry: a name longer than 255 bytes; not extracted", None
    if info.flag_bits & 0x1:
        return "archive entry is encrypted (needs a password); not extracted", None
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        return (f"archive entry looks like a zip bomb ({info.file_size / 2**20:.0f} MB from "
                f"{info.compress_size / 2**10:.0f} KB, more than {limits.max_ratio:g} times); not extracted"), None
    return "", "/".join(parts)


def _write(zout: zipfile.ZipFile, name: str, original: zipfile.ZipInfo, data) -> None:
    """`data` (a file object) as the regular file `name`, mode 0644, in `zout`."""
    info = zipfile.ZipInfo(name, date_time=original.date_time)
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    data.seek(0, os.SEEK_END)
    info.file_size = data.tell()
    data.seek(0)
    with zout.open(info, "w") as out:
        shutil.copyfileobj(data, out, 2**20)


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
