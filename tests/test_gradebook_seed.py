"""A new course folder starts from the empty gradebook `gradebook.seed` copies in, instead of one
nbgrader makes by running the `alembic` command (a new interpreter, ~5 s): after nbgrader's
generate_assignment the two gradebooks hold the same schema version, tables and rows."""

import re
import sqlite3

import nbgrader.api
import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import gradebook, kernel_course, plan

pytestmark = pytest.mark.slow


def dump(path):
    """Every schema statement and row of a gradebook, sorted, with the random uuids normalised."""
    connection = sqlite3.connect(path)
    try:
        return sorted(re.sub(r"'[0-9a-f]{32}'", "'<uuid>'", line) for line in connection.iterdump())
    finally:
        connection.close()


def test_a_seeded_gradebook_is_the_one_nbgrader_makes(tmp_path, monkeypatch):
    source = nbs.read(load_course().assignments["resnet_blocks"].notebook("source"))
    notebook = nbs.writes(plan.kernel_source(source))
    config = (REPO / "nbgrader_config.py").read_text()
    with monkeypatch.context() as m:                       # nbgrader alone: it runs alembic
        m.setattr(gradebook, "seed", lambda folder: None)
        kernel_course.generate(tmp_path / "nbgrader", "resnet_blocks", notebook, config)
    gradebook.seed(tmp_path / "warm-up")                   # the empty gradebook exists from here on

    def alembic_ran():
        raise AssertionError("nbgrader ran alembic for a seeded course folder")

    monkeypatch.setattr(nbgrader.api, "get_alembic_version", alembic_ran)
    kernel_course.generate(tmp_path / "seeded", "resnet_blocks", notebook, config)
    ours, theirs = dump(tmp_path / "seeded" / "gradebook.db"), dump(tmp_path / "nbgrader" / "gradebook.db")
    assert any("alembic_version" in line and "INSERT" in line for line in theirs)
    assert sum("INSERT INTO \"grade_cells\"" in line for line in theirs) > 5, "expected the assignment's cells"
    assert ours == theirs


def test_seed_keeps_an_existing_gradebook(tmp_path):
    (tmp_path / "gradebook.db").write_bytes(b"not replaced")
    gradebook.seed(tmp_path)
    assert (tmp_path / "gradebook.db").read_bytes() == b"not replaced"
