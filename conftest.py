"""pytest setup shared by tests/ and the nbval run over source/."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED_DATA = REPO.parent / "shared" / "data"
if "COURSE_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["COURSE_DATA_DIR"] = str(SHARED_DATA)

# Filled by tests/test_grading.py, printed at the end of the run.
GRADING_TABLES: list[str] = []


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    for table in GRADING_TABLES:
        terminalreporter.write_sep("=", "grading suite: points per graded cell")
        terminalreporter.write_line(table)
