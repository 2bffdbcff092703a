"""Fixtures the test modules share (the repository's conftest.py sets up pytest itself)."""

import pytest


@pytest.fixture
def home_in_tmp(tmp_path, monkeypatch):
    """HOME in the test's temporary folder (medsegbench creates ~/.medsegbench when first imported:
    kept out of the real home)."""
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="session")
def grading_batches(tmp_path_factory):
    """grading_batches(aid, stop_after=None): the grading suite's batch of (assignment, prefix)
    (tests/grading_batches.py), graded once per session: its report, source, work folder,
    summary, table and the repository's fingerprint before and after."""
    from tests.grading_batches import grade_suite_batch

    batches = {}

    def batch(aid, stop_after=None):
        if (aid, stop_after) not in batches:
            batches[aid, stop_after] = grade_suite_batch(aid, tmp_path_factory, stop_after)
        return batches[aid, stop_after]

    return batch
