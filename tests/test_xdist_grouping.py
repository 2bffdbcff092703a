"""`make test` runs notebooks under pytest-xdist: every cell of a notebook must reach the same kernel.

A regression test for the conftest's grouping (see `suffix_group`): with the grouping lost, the two
workers split a notebook between them and a cell that uses an earlier cell's name fails.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def test_cells_of_one_notebook_share_a_kernel_under_xdist(tmp_path):
    shutil.copy(REPO / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    cells = [nbformat.v4.new_code_cell("value = 0")]
    cells += [nbformat.v4.new_code_cell(f"assert value == {i}\nvalue += 1") for i in range(12)]
    for name in ("first", "second"):
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"{name}.ipynb")
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-kernel-startup-timeout=300",
                          "-n", "2", "--dist", "loadgroup", "-v", "first.ipynb", "second.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "26 passed" in run.stdout, run.stdout[-3000:]
    workers = {}
    for line in run.stdout.splitlines():
        if line.startswith("[gw") and "PASSED" in line:
            workers.setdefault(line.split("::")[0].split()[-1], set()).add(line.split("]")[0])
    assert workers and all(len(w) == 1 for w in workers.values()), f"a notebook ran on several workers: {workers}"
