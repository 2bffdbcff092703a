"""`make bench` figures: built where students never see them, from names the notebook defines."""

import ast
import builtins

import pytest

from coursekit import bench
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.plan import module_level_bindings

COURSE = load_course()


def visible_code(cell):
    """A code cell's source as a student's copy shows it (hidden-test regions removed)."""
    lines, hidden = [], False
    for line in cell.source.splitlines():
        if line.strip() == nbs.BEGIN_HIDDEN:
            hidden = True
        elif line.strip() == nbs.END_HIDDEN:
            hidden = False
        elif not hidden:
            lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("aid", list(COURSE.assignments))
def test_students_never_see_the_benchmark_dict(aid):
    nb = nbs.read(COURSE.assignments[aid].notebook("source"))
    shown = [c.id for c in nb.cells if c.cell_type == "code" and "BENCHMARK" in visible_code(c)]
    assert not shown, (f"{aid}: cells {shown} show the instructors' BENCHMARK dict to students; build it in a "
                       f"hidden-test region or in coursekit/bench.py's FIGURES")


@pytest.mark.parametrize("aid", sorted(bench.FIGURES))
def test_bench_figures_read_only_names_the_notebook_defines(aid):
    nb = nbs.read(COURSE.assignments[aid].notebook("source"))
    defined = set().union(*(module_level_bindings(c.source) for c in nb.cells if c.cell_type == "code"))
    read = {n.id for n in ast.walk(ast.parse(bench.FIGURES[aid])) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}
    missing = sorted(read - defined - set(dir(builtins)))
    assert not missing, f"bench.FIGURES[{aid!r}] reads {missing}, which no cell of the notebook defines any more"
