"""The kernel's course: the nbgrader course a submission's kernel is graded against (the source
notebook without its hidden tests, and its gradebook), generated once per notebook and nbgrader
configuration and cached under `.build/kernel-courses/`."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import nbformat

from .. import REPO, nbgrader_run
from .. import notebooks as nbs
from . import gradebook, layout, plan

CACHE = REPO / ".build" / "kernel-courses"


def kernel_course(folder: Path, aid: str, source: nbformat.NotebookNode) -> Path:
    """Create or refresh the nbgrader course the kernel grades against (an existing gradebook is
    kept): the source notebook without its hidden tests. A new one is copied from a cache keyed by
    the notebook and the nbgrader configuration (`.build/kernel-courses/`), generated once."""
    notebook = nbs.writes(plan.kernel_source(source))
    config = (REPO / "nbgrader_config.py").read_text()
    if (folder / "gradebook.db").exists():
        generate(folder, aid, notebook, config)
        return folder
    key = hashlib.sha256(f"{aid}\0{notebook}\0{config}".encode()).hexdigest()[:20]
    cached = CACHE / key
    if not (cached / "gradebook.db").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=CACHE))
        generate(staging, aid, notebook, config)
        try:
            staging.rename(cached)
        except OSError:                               # another process cached it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cached, folder, dirs_exist_ok=True)
    return folder


def generate(folder: Path, aid: str, notebook: str, config: str) -> None:
    """nbgrader's generate_assignment of `notebook` (text) in the course folder `folder`."""
    from nbgrader.converters import GenerateAssignment

    source = layout.notebook(folder, "source", aid)
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(notebook)
    (folder / "nbgrader_config.py").write_text(config)
    gradebook.seed(folder)
    settings = nbgrader_run.course_config(folder, **{"BaseConverter.force": True,
                                                     "GenerateAssignment.create_assignment": True})
    nbgrader_run.app(GenerateAssignment, folder, settings, assignment_id=aid)
