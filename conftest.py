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
CHEATING_ROWS: dict[str, tuple] = {}


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores, for its notebook kernels (math
    threads) and its grading batches ($COURSEKIT_CPUS). With two threads per worker on two cores the
    ResNet18 training cell ran past 600 s (85 s alone); at one thread it still took 585 s beside the
    other worker, so this removes the oversubscription, not the slowness (see issue 11)."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))
    if workers:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "COURSEKIT_CPUS"):
            os.environ.setdefault(var, share)


def pytest_collection_modifyitems(config, items):
    """Notebooks and grading batches are slow; under pytest-xdist (`make test` runs two workers,
    `--dist loadgroup`) all cells of a notebook, and all tests of one grading batch, share a worker."""
    for item in items:
        if item.path.suffix == ".ipynb":
            group = f"notebook:{item.path.name}"
            item.add_marker(pytest.mark.slow)
        elif item.path.name in ("test_grading.py", "test_gradescope.py", "test_grading_modes.py") \
                and hasattr(item, "callspec"):
            group = item.module.batch_of(item.callspec.params)
        elif item.path.name == "test_formgrade.py":       # one graded class, one server, one browser
            group = "formgrade"
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        if getattr(config.option, "loadgroup", False) and "@" not in item.nodeid:
            suffix_group(item, group)


def suffix_group(item, group):
    """Put the group into the node id as pytest-xdist's `--dist loadgroup` expects (`id@group`).

    xdist 3.8 does it by assigning `item._nodeid`, which pytest 9.2 no longer reads (node ids became
    the structured `item._id`), and it runs before this conftest anyway: without this, every test
    is its own unit of work, the two workers split each notebook between them and each cell meets a
    fresh kernel (NameError on everything the earlier cells defined)."""
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{group}")


def pytest_runtest_logreport(report):
    """Tables the grading suite attaches to its test reports (also from xdist workers)."""
    for key, value in getattr(report, "user_properties", []):
        if key == "grading_table" and value not in GRADING_TABLES:
            GRADING_TABLES.append(value)
        elif key == "cheating_row":
            CHEATING_ROWS[value[0]] = tuple(value[1])


PHASES = [("nbval: source notebooks executed", "source/"), ("grading suite", "tests/test_grading.py"),
          ("grading modes (no namespaces, own user)", "tests/test_grading_modes.py"),
          ("re-grading and review", "tests/test_autograder_rerun.py"),
          ("formgrader in the browser, hand grades", "tests/test_formgrade.py"),
          ("Gradescope export", "tests/test_gradescope.py"),
          ("generated notebooks fresh and leak-free", "tests/test_generated.py"), ("other tests", "")]


def pytest_terminal_summary(terminalreporter):
    totals = dict.fromkeys(name for name, _ in PHASES)
    counts = dict.fromkeys(totals, 0)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not hasattr(report, "duration") or not hasattr(report, "nodeid"):
                continue
            phase = next(name for name, prefix in PHASES if report.nodeid.startswith(prefix))
            totals[phase] = (totals[phase] or 0.0) + report.duration
            counts[phase] += report.when == "call"
    terminalreporter.write_sep("=", "time per phase (setup + call + teardown)")
    for phase, seconds in totals.items():
        if seconds is not None:
            terminalreporter.write_line(f"{phase:<42} {counts[phase]:>4} items {seconds / 60:6.1f} min")
    for table in GRADING_TABLES:
        terminalreporter.write_sep("=", "grading suite: points per graded cell")
        terminalreporter.write_line(table)
    if CHEATING_ROWS:
        terminalreporter.write_sep("=", "cheating corpus: outcome per attack")
        terminalreporter.write_line(f"{'attack':<34} {'class':<22} {'expected':<12} {'outcome':<13} score (honest bar)")
        for name, (cls, expect, status, score, bar, top, why) in sorted(CHEATING_ROWS.items(), key=lambda r: r[1][0]):
            terminalreporter.write_line(f"{name:<34} {cls:<22} {expect:<12} {status:<13} "
                                        f"{score:g}/{top:g} ({bar:g})  {why}")
