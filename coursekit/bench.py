"""`make bench`: execute reference notebooks and print the figures they measure.

A training notebook defines a dict `BENCHMARK` (name → number or text: device, seconds per epoch,
training seconds, validation/test metrics, ...). The benchmark runs the source notebook (the
reference solution) top to bottom with nbclient, then prints that dict and the wall time. Speed
and accuracy targets are read from this output, never asserted in timed tests.
"""

from __future__ import annotations

import json
import time

import nbformat
from nbclient import NotebookClient

from . import notebooks as nbs
from .config import load_course

MARK = "COURSEKIT_BENCHMARK "
REPORT_CELL = (f"import json as _json\n"
               f"print({MARK!r} + _json.dumps(globals().get('BENCHMARK', {{}}), default=str))")


def run(assignment_id: str) -> dict:
    """Execute the reference notebook; return its BENCHMARK figures plus the wall time."""
    assignment = load_course().assignments[assignment_id]
    path = assignment.notebook("source")
    nb = nbs.read(path)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    client = NotebookClient(nb, timeout=assignment.cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    figures = {"notebook wall seconds": round(time.perf_counter() - start, 1)}
    for out in nb.cells[-1].outputs:
        for line in out.get("text", "").splitlines():
            if line.startswith(MARK):
                figures.update(json.loads(line[len(MARK):]))
    return figures


def main(ids: list[str] | None = None) -> None:
    for aid in ids or list(load_course().assignments):
        print(f"== {aid}: running the reference notebook ...", flush=True)
        figures = run(aid)
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"   {key:<{width}}  {shown}")
