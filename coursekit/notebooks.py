"""Notebook hygiene and nbgrader cell helpers: read/write, tidy, regions, submissions.

Source notebooks are code: stored without outputs or execution metadata, with stable cell ids
and a plain python3 kernelspec. Two cells of every notebook are generated from templates (the
Colab badge and the setup cell) so they stay identical across the course.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .config import Assignment, load_course, normalise, pinned_versions

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
KEPT_CELL_METADATA = ("nbgrader", "coursekit", "tags")
# Plumbing cells (setup, data loaders, the checks' tools) are stored collapsed: metadata
# `coursekit.collapsed` is the title shown instead of the code. tidy writes what each editor honours:
# JupyterLab and Jupyter Notebook hide the source of `jupyter.source_hidden` cells (one click shows
# it); Colab shows a `cellView: form` cell whose first line is `# @title ...` as that title.
TITLE_PREFIX = "# @title "

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# ---------------------------------------------------------------- reading and writing
def read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def writes(nb: NotebookNode) -> str:
    """The notebook as stored: deterministic (sorted keys, indent 1, trailing newline)."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def write(nb: NotebookNode, path: Path) -> None:
    """Write deterministically so diffs stay small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(writes(nb))


# ---------------------------------------------------------------- nbgrader metadata
def nbgrader(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader(cell).get("grade_id")


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_test(cell: NotebookNode) -> bool:
    """An autograded test cell: graded, not a solution, code."""
    meta = nbgrader(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def cells_by_grade_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {gid: cell for cell in nb.cells if (gid := grade_id(cell))}


def test_cells_of(nb: NotebookNode, solution_id: str) -> list[NotebookNode]:
    """Test cells that grade `solution_id`: grade_id `test_<id>` or `test_<id>_<aspect>`."""
    pattern = re.compile(rf"^test_{re.escape(solution_id)}(_[a-z0-9_]+)?$")
    return [c for c in nb.cells if is_test(c) and pattern.match(grade_id(c))]


# ---------------------------------------------------------------- regions
def region_lines(source: str, begin: str, end: str) -> list[str]:
    """Lines strictly between `begin` and `end` marker lines."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == begin:
            inside = True
        elif stripped == end:
            inside = False
        elif inside:
            out.append(line)
    return out


def without_markers(source: str) -> str:
    """The solution as a student would write it: solution marker lines dropped."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def without_region(source: str, begin: str, end: str) -> str:
    """`source` without the lines from `begin` to `end` (markers included)."""
    kept, inside = [], False
    for line in source.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def without_hidden_tests(source: str) -> str:
    return without_region(source, BEGIN_HIDDEN, END_HIDDEN)


def secret_lines(source: NotebookNode) -> tuple[set[str], set[str]]:
    """Distinctive lines (stripped) of solution regions and of hidden tests: text that must never
    reach a student. Comments, short lines and lines that also occur in what students see anyway
    (teaching cells, visible tests, the hints and signatures around solution regions, the starter
    code of find-and-fix cells) are left out; hidden-test lines that repeat solution lines count as
    solution lines (answer keys publish those)."""
    solution, hidden, public = set(), set(), []
    for cell in source.cells:
        solution |= {line.strip() for line in region_lines(cell.source, BEGIN_SOLUTION, END_SOLUTION)}
        hidden |= {line.strip() for line in region_lines(cell.source, BEGIN_HIDDEN, END_HIDDEN)}
        if not is_solution(cell):
            public.append(without_hidden_tests(cell.source))
        else:
            public.append(without_region(cell.source, BEGIN_SOLUTION, END_SOLUTION))
            if starter := cell.get("metadata", {}).get("coursekit", {}).get("starter"):
                public.append(starter)  # shipped in the release on purpose
    public_text = "\n".join(public)

    def distinctive(lines):
        return {line for line in lines
                if len(line) >= 12 and not line.startswith("#") and line not in public_text}
    return distinctive(solution), distinctive(hidden - solution)


# ---------------------------------------------------------------- submissions
def make_submission(release: NotebookNode, answers: dict[str, str]) -> NotebookNode:
    """A student's notebook: the release with the given cells' sources replaced (by grade_id)."""
    nb = copy.deepcopy(release)
    cells = cells_by_grade_id(nb)
    unknown = set(answers) - set(cells)
    if unknown:
        raise KeyError(f"no cell with grade_id {sorted(unknown)} in the release notebook")
    for gid, code in answers.items():
        cells[gid].source = code
    return nb


def prefix(nb: NotebookNode, stop_after: str | None) -> NotebookNode:
    """The notebook up to and including cell `stop_after` (all of it for None): grading a prefix
    checks the cells before a long training part in seconds."""
    if stop_after is None:
        return nb
    ids = [c.id for c in nb.cells]
    return nbformat.from_dict({**nb, "cells": nb.cells[: ids.index(stop_after) + 1]})


def reference_answers(source: NotebookNode) -> dict[str, str]:
    """{grade_id: instructor solution without markers} for every solution cell."""
    return {grade_id(c): without_markers(c.source) for c in source.cells if is_solution(c)}


# ---------------------------------------------------------------- generated cells
def badge_markdown(assignment: Assignment) -> str:
    url = load_course().colab_url(assignment.id)
    return (f'<a href="{url}" target="_parent"><img '
            'src="https://colab.research.google.com/assets/colab-badge.svg" '
            'alt="Open In Colab"/></a>')


SETUP_TITLE = "Setup: run this cell first (safe to re-run)"
SETUP_TEMPLATE = '''\
# It is the same in every notebook of the course.
# In Colab it installs what Colab lacks; everywhere it seeds, picks the device and finds the data.
import importlib.metadata
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

COLAB_PACKAGES = {packages}  # pinned as in the course's requirements.txt
IN_COLAB = "google.colab" in sys.modules


def _installed(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


if IN_COLAB:
    missing = [f"{{d}}=={{v}}" for d, v in COLAB_PACKAGES.items() if _installed(d) != v]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)

import numpy as np
import torch

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if device.type == "cuda":
    print(f"GPU runtime is ON: {{torch.cuda.get_device_name(device)}}. Using device = {{device}}.")
else:
    print("GPU runtime is OFF: using device = cpu. Everything still runs, only slower.")
    if IN_COLAB:
        print("To turn the GPU on: Runtime > Change runtime type > Hardware accelerator: "
              "GPU (e.g. T4) > Save, then run this notebook again from the top.")

# One data root for the course. Unset: a folder in your home directory, filled by downloads.
DATA_DIR = Path(os.environ.get("COURSE_DATA_DIR", Path.home() / "course_data")).expanduser()


def locate_data(relative_path, download_host):
    """Return (folder, must_download) for a course data file under DATA_DIR.

    A staged copy is used as it is (no download). Otherwise the file is downloaded from
    `download_host`, and if that host cannot be reached we stop at once with a clear message.
    """
    staged = DATA_DIR / relative_path
    if staged.is_file():
        return staged.parent, False
    try:
        socket.create_connection((download_host, 443), timeout=5).close()
    except OSError as err:
        raise FileNotFoundError(
            f"{{relative_path}} is not staged under COURSE_DATA_DIR ({{DATA_DIR}}) and the "
            f"download host {{download_host}} cannot be reached ({{err}}). Put the file at "
            f"{{staged}}, or set COURSE_DATA_DIR to a folder that has it, or connect to the internet."
        ) from None
    staged.parent.mkdir(parents=True, exist_ok=True)
    return staged.parent, True
'''


def setup_source(assignment: Assignment) -> str:
    pins = pinned_versions()
    packages = {}
    for dist in assignment.colab_packages:
        if normalise(dist) not in pins:
            raise KeyError(f"{dist} (colab_packages of {assignment.id}) is not in requirements.txt")
        packages[dist] = pins[normalise(dist)]
    return SETUP_TEMPLATE.format(packages=repr(packages)).rstrip("\n")


GENERATED = {"badge": badge_markdown, "setup": setup_source}


def generated_kind(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("coursekit", {}).get("generated")


def collapsed_title(cell: NotebookNode) -> str | None:
    """The title a plumbing cell shows instead of its code (metadata `coursekit.collapsed`)."""
    return cell.get("metadata", {}).get("coursekit", {}).get("collapsed")


def collapse(cell: NotebookNode, title: str) -> None:
    """Store `cell` collapsed under `title`, for JupyterLab/Notebook and for Colab (see TITLE_PREFIX)."""
    lines = cell.source.splitlines()
    if lines and lines[0].startswith(TITLE_PREFIX):
        lines = lines[1:]
    cell.source = "\n".join([TITLE_PREFIX + title, *lines])
    cell.metadata["jupyter"] = {"source_hidden": True}
    cell.metadata["cellView"] = "form"


# ---------------------------------------------------------------- tidy
def tidy(nb: NotebookNode, assignment: Assignment) -> NotebookNode:
    """Return the notebook in its stored form: no outputs, minimal metadata, stable unique ids,
    generated cells in sync with their templates."""
    nb = copy.deepcopy(nb)
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cell.metadata = {k: v for k, v in cell.get("metadata", {}).items() if k in KEPT_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        if kind := generated_kind(cell):
            cell.source = GENERATED[kind](assignment)
        if kind == "setup":
            cell.metadata["coursekit"]["collapsed"] = SETUP_TITLE
        if cell.cell_type == "code" and (title := collapsed_title(cell)):
            collapse(cell, title)
        cell_id = cell.get("id") or grade_id(cell) or f"{assignment.id}-{index:02d}"
        while cell_id in seen:
            cell_id += "-dup"
        seen.add(cell_id)
        cell.id = cell_id
    return nb
