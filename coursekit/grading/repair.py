"""Repair: mend what nbgrader cannot grade around, by the release's stable cell ids (cleared
nbgrader metadata, duplicated graded cells, deleted test or read-only cells). The cells that export
a training cell's results for the verification run are inserted by `plan.insert_export_cells`."""

from __future__ import annotations

import copy

from nbformat import NotebookNode

from .. import notebooks as nbs


def repair(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Mend `nb` in place; returns what was repaired (shown in the status reason)."""
    notes = []
    released = nbs.cells_by_grade_id(release)
    restored = 0
    for cell in nb.cells:
        twin = released.get(cell.get("id"))
        if not nbs.grade_id(cell) and twin is not None and twin.cell_type == cell.cell_type:
            cell.metadata["nbgrader"] = copy.deepcopy(twin.metadata["nbgrader"])
            restored += 1
    if restored:
        notes.append(f"nbgrader metadata of {restored} cells restored from their ids")
    seen = set()
    for cell in nb.cells:
        gid = nbs.grade_id(cell)
        if gid in seen:
            cell.metadata.pop("nbgrader")
            notes.append(f"a copy of {gid} kept as a plain cell")
        elif gid:
            seen.add(gid)
    for index, cell in enumerate(release.cells):
        gid = nbs.grade_id(cell)
        if gid and gid not in seen and nbs.nbgrader(cell).get("locked"):
            before = {nbs.grade_id(c) for c in release.cells[:index]}
            at = max([i + 1 for i, c in enumerate(nb.cells) if nbs.grade_id(c) in before], default=0)
            restored_cell = copy.deepcopy(cell)
            if restored_cell.id in {c.get("id") for c in nb.cells}:
                restored_cell.id = f"{gid}-restored"
            nb.cells.insert(at, restored_cell)
            seen.add(gid)
            notes.append(f"deleted cell {gid} restored")
    return notes


def is_of_assignment(nb: NotebookNode, source: NotebookNode) -> bool:
    """At least one of the assignment's answer cells is in the notebook."""
    return bool({nbs.grade_id(c) for c in nb.cells} & set(nbs.reference_answers(source)))
