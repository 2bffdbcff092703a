"""What runs where: the kernel's notebook and the verification run's plan, from the source notebook.

The student's kernel (nbgrader autograde) never sees a hidden test: it grades against a course
whose source notebook has the hidden regions removed (`kernel_source`). The trusted verification
run (`runner.py`) re-runs every graded test in full, in a process of its own; its plan (`plan`) is
the submission's cell sequence, as nbgrader executes it, with every cell the course owns taken from
the source notebook and only the student's own code taken from the submission:

    instructor  a locked teaching cell: the source's code
    answer      an answer cell: the student's code
    extra       a code cell the student added: the student's code
    test        a graded test cell: the source's code, hidden tests included
    artefact    a cell that trains (metadata `coursekit.verify.artefacts`): not re-run; what later
                cells need from it is restored from the kernel's export (weights as safetensors,
                histories as JSON), written by an export cell inserted right after it
    skip        an expensive cell no test depends on (metadata `coursekit.verify: "skip"`)
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from .. import notebooks as nbs
from .codescan import transform_magics

EXPORT_PREFIX = "coursekit-export-"
ARTEFACT_FOLDER = "coursekit_artefacts"


# ---------------------------------------------------------------- cell metadata
def verify_spec(cell: NotebookNode):
    """The cell's `coursekit.verify` metadata: None, "skip" or {"artefacts": {...}}."""
    return cell.get("metadata", {}).get("coursekit", {}).get("verify")


def artefacts_of(cell: NotebookNode) -> dict:
    spec = verify_spec(cell)
    return spec.get("artefacts", {}) if isinstance(spec, dict) else {}


def is_skipped(cell: NotebookNode) -> bool:
    return verify_spec(cell) == "skip"


def module_level_bindings(code: str) -> set[str]:
    """Names a cell binds at module level: assignments, imports, defs, classes, for/with targets."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()

    def stores(node: ast.AST) -> None:
        names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))

    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                stores(target)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            stores(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    stores(item.optional_vars)
        elif isinstance(node, ast.Try):
            names |= {h.name for h in node.handlers if h.name}
            statements += [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.Match):
            statements += [s for case in node.cases for s in case.body]
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.While,
                             ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Return)):
            names |= {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}
        for part in ("body", "orelse", "finalbody"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                statements += getattr(node, part, [])
    return names


# ---------------------------------------------------------------- the kernel's side
def kernel_source(source: NotebookNode) -> NotebookNode:
    """The source notebook the kernel's course is generated from: hidden tests removed."""
    nb = copy.deepcopy(source)
    for cell in nb.cells:
        if nbs.is_test(cell):
            cell.source = nbs.without_hidden_tests(cell.source)
    return nb


EXPORT_CODE = '''\
# Added by the grader: saves what the verification run needs from the cell above
# (model weights as safetensors, histories as JSON). Not part of your notebook.
def _coursekit_export(cell, names, folder={folder!r}):
    import json, os
    target = os.path.join(folder, cell)
    os.makedirs(target, exist_ok=True)

    def plain(value):
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"{{type(value).__name__}} is not JSON data")

    manifest = {{}}
    for name, kind in names.items():
        try:
            value = globals()[name]
            if kind == "module":
                from safetensors.torch import save_file
                devices = sorted({{p.device.type for p in value.parameters()}})
                state = {{k: v.detach().to("cpu").contiguous().clone() for k, v in value.state_dict().items()}}
                save_file(state, os.path.join(target, name + ".safetensors"))
                entry = {{"kind": "module", "devices": devices, "training": bool(value.training)}}
            else:
                with open(os.path.join(target, name + ".json"), "w") as f:
                    json.dump(value, f, default=plain)
                entry = {{"kind": "json"}}
        except Exception as err:
            entry = {{"kind": "missing", "why": f"{{type(err).__name__}}: {{err}}"[:300]}}
        manifest[name] = entry
    with open(os.path.join(target, "manifest.json"), "w") as f:
        json.dump(manifest, f)


_coursekit_export({cell!r}, {names!r})
del _coursekit_export'''


def export_cell(cell_id: str, artefacts: dict) -> NotebookNode:
    kinds = {name: "module" if isinstance(spec, dict) and "module" in spec else "json"
             for name, spec in artefacts.items()}
    cell = nbformat.v4.new_code_cell(EXPORT_CODE.format(folder=ARTEFACT_FOLDER, cell=cell_id, names=kinds))
    cell.id = f"{EXPORT_PREFIX}{cell_id}"
    return cell


def insert_export_cells(nb: NotebookNode, source: NotebookNode) -> None:
    """After every artefact cell of the submission, the cell that exports its artefacts."""
    specs = {c.id: artefacts_of(c) for c in source.cells if artefacts_of(c)}
    cells = []
    for cell in nb.cells:
        if cell.get("id", "").startswith(EXPORT_PREFIX):
            continue                                   # a student's copy of ours: dropped
        cells.append(cell)
        gid = nbs.grade_id(cell)
        if gid in specs and cell.cell_type == "code":
            cells.append(export_cell(gid, specs[gid]))
    nb.cells = cells


# ---------------------------------------------------------------- the verification run's side
@dataclass
class PlannedCell:
    kind: str                       # instructor | answer | extra | test | artefact | skip
    id: str
    code: str = ""
    owns: list[str] = field(default_factory=list)      # names this answer cell is the source of
    artefacts: dict = field(default_factory=dict)
    hidden_lines: list[int] = field(default_factory=list)   # 1-based lines of hidden tests
    points: float = 0.0

    def to_json(self) -> dict:
        return {"kind": self.kind, "id": self.id, "code": self.code, "owns": self.owns,
                "artefacts": self.artefacts}


def hidden_line_numbers(source: str) -> list[int]:
    """1-based numbers of the lines inside (and of) the hidden-tests markers of a test cell."""
    lines, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == nbs.BEGIN_HIDDEN:
            inside = True
        if inside:
            lines.append(number)
        if stripped == nbs.END_HIDDEN:
            inside = False
    return lines


def owned_names(source: NotebookNode) -> dict[str, list[str]]:
    """{answer cell: names its reference solution binds}: the names a student's cell owns."""
    owned = {}
    for cell in source.cells:
        if nbs.is_solution(cell) and cell.cell_type == "code":
            names = module_level_bindings(nbs.without_markers(cell.source)) | set(artefacts_of(cell))
            owned[nbs.grade_id(cell)] = sorted(names)
    return owned


def as_python(code: str) -> str:
    """A cell as the kernel runs it: IPython's transformation of its %magics (`%%time`, `%matplotlib
    inline`), which the runner's `get_ipython()` stand-in then runs or ignores; without it one magic
    line makes the whole cell a SyntaxError in the verification run only. Test cells are the
    course's own and are not transformed (their hidden-test line numbers stay exact)."""
    if not code.strip():
        return code
    head, newline, body = code.partition("\n")
    if head.startswith("%%") and newline:          # %%time and the like transform their body too
        return transform_magics(head + "\n" + transform_magics(body))
    return transform_magics(code)


def plan(submission: NotebookNode, source: NotebookNode) -> list[PlannedCell]:
    """The verification run's cells, in the submission's order (as nbgrader executes them)."""
    by_id = nbs.cells_by_grade_id(source)
    owned = owned_names(source)
    planned: list[PlannedCell] = []
    last_test = max((i for i, c in enumerate(submission.cells)
                     if nbs.grade_id(c) in by_id and nbs.is_test(by_id[nbs.grade_id(c)])), default=-1)
    for index, cell in enumerate(submission.cells[: last_test + 1]):
        if cell.get("id", "").startswith(EXPORT_PREFIX):
            continue
        gid = nbs.grade_id(cell)
        mine = by_id.get(gid)
        if mine is None:                              # a cell the student added
            if cell.cell_type == "code":
                planned.append(PlannedCell("extra", cell.get("id") or f"cell-{index}", as_python(cell.source)))
            continue
        if mine.cell_type != "code":                  # nbgrader restores a graded cell's type
            continue
        elif artefacts_of(mine):
            planned.append(PlannedCell("artefact", gid, owns=owned.get(gid, []),
                                       artefacts=artefacts_of(mine)))
        elif is_skipped(mine):
            planned.append(PlannedCell("skip", gid))
        elif nbs.is_test(mine):
            planned.append(PlannedCell("test", gid, mine.source, hidden_lines=hidden_line_numbers(mine.source),
                                       points=float(nbs.nbgrader(mine).get("points", 0))))
        elif nbs.is_solution(mine):
            planned.append(PlannedCell("answer", gid, as_python(cell.source), owns=owned.get(gid, [])))
        else:
            planned.append(PlannedCell("instructor", gid, as_python(mine.source)))
    return planned
