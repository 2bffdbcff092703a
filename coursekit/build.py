"""`make release`: nbgrader compiles source/ into release/ (students) and solutions/ (answer keys).

Both outputs carry the sha256 of the source notebook they came from (notebook metadata
`coursekit.source_sha256`), so staleness is a cheap, exact check and a rebuild of an unchanged
assignment is skipped: running `make release` twice changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import tokenize
from pathlib import Path

from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from . import REPO, nbgrader_run
from . import notebooks as nbs
from .config import Assignment, Course, load_course
from .grading import gradebook

STEPS = ("release", "solutions")


# ---------------------------------------------------------------- hashing and stamps
def source_sha256(assignment: Assignment, root: Path = REPO) -> str:
    return hashlib.sha256(assignment.notebook("source", root).read_bytes()).hexdigest()


def stamp_of(path: Path) -> str | None:
    if not path.exists():
        return None
    return nbs.read(path).metadata.get("coursekit", {}).get("source_sha256")


def finish(path: Path, sha: str, keep_outputs: bool) -> None:
    """Stamp a generated notebook with its source hash; drop volatile execution metadata. Kept
    outputs are stored as a reader sees them: a cell's consecutive stream messages merged and text
    overwritten by a carriage return dropped (nbconvert's CoalesceStreamsPreprocessor), so a
    progress bar is saved once, finished, and shows so in any renderer."""
    nb = nbs.read(path)
    nb.metadata["coursekit"] = {"source_sha256": sha}
    if keep_outputs:
        nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code" and not keep_outputs:
            cell.outputs, cell.execution_count = [], None
    nbs.write(nb, path)


# ---------------------------------------------------------------- building
def compile_assignment(assignment: Assignment, root: Path, execute: bool = True) -> None:
    """nbgrader generate_assignment + generate_solution for one assignment in course dir `root`."""
    timeout = f"--Execute.timeout={assignment.cell_timeout}"
    nbgrader_run.cli("generate_assignment", assignment.id, "--force", cwd=root)
    nbgrader_run.cli("generate_solution", assignment.id, "--force", timeout, cwd=root,
                     env=None if execute else {"COURSEKIT_SKIP_EXECUTE": "1"})
    sha = source_sha256(assignment, root)
    solutions = assignment.notebook("solutions", root)
    failed = [f"{cell.id}: {out.get('ename')}: {out.get('evalue')}"
              for cell in nbs.read(solutions).cells
              for out in cell.get("outputs", []) if out.get("output_type") == "error"] if execute else []
    finish(assignment.notebook("release", root), sha, keep_outputs=False)
    # A key that failed keeps its error outputs for reading but no source hash: the next
    # `make release` builds it again instead of calling it up to date.
    finish(solutions, "" if failed else sha, keep_outputs=execute)
    if failed:
        raise RuntimeError(f"the answer key of {assignment.id} fails when executed "
                           f"(is COURSE_DATA_DIR set? a CellTimeoutError: cell_timeout in course.toml):\n"
                           + "\n".join(failed))


def is_fresh(assignment: Assignment, root: Path = REPO) -> bool:
    sha = source_sha256(assignment, root)
    return all(stamp_of(assignment.notebook(step, root)) == sha for step in STEPS)


def build(ids: list[str] | None = None, force: bool = False) -> None:
    """Compile every (or the named) assignment whose release or solutions are stale."""
    course = load_course()
    gradebook.seed(REPO)
    for aid in ids or list(course.assignments):
        assignment = course.assignments[aid]
        source = assignment.notebook("source")
        tidied = nbs.tidy(nbs.read(source), assignment)
        if nbs.read(source) != tidied:
            nbs.write(tidied, source)
            print(f"{aid}: tidied source notebook")
        if not force and is_fresh(assignment):
            print(f"{aid}: release/ and solutions/ up to date")
            continue
        print(f"{aid}: compiling release/ and executing solutions/ ...", flush=True)
        compile_assignment(assignment, REPO)
        print(f"{aid}: wrote {assignment.notebook('release').relative_to(REPO)} and "
              f"{assignment.notebook('solutions').relative_to(REPO)}")
    problems = cross_release_leaks(course)
    if problems:
        raise SystemExit("\n".join(problems))


# ---------------------------------------------------------------- checking
def scratch_course(assignment: Assignment, tmp: Path) -> Path:
    """A throwaway course dir holding only this assignment's source and the course config."""
    shutil.copytree(REPO / "source" / assignment.id, tmp / "source" / assignment.id)
    shutil.copy(REPO / "nbgrader_config.py", tmp / "nbgrader_config.py")
    gradebook.seed(tmp)
    return tmp


def staleness(assignment: Assignment) -> list[str]:
    """Why release/ or solutions/ do not match a fresh compile of source/ ([] when they do)."""
    fix = "run `make release` and commit release/ and solutions/ with the source change"
    problems = []
    sha = source_sha256(assignment)
    for step in STEPS:
        path = assignment.notebook(step)
        if stamp_of(path) != sha:
            problems.append(f"{path.relative_to(REPO)} was not built from the current source: {fix}")
    if problems:
        return problems
    with tempfile.TemporaryDirectory() as tmp:
        root = scratch_course(assignment, Path(tmp))
        compile_assignment(assignment, root, execute=False)
        fresh_release = nbs.read(assignment.notebook("release", root))
        if nbs.read(assignment.notebook("release")) != fresh_release:
            problems.append(f"release/{assignment.id} differs from what nbgrader compiles "
                            f"(edited by hand?): {fix}")
        fresh_key = [c.source for c in nbs.read(assignment.notebook("solutions", root)).cells]
        committed_key = [c.source for c in nbs.read(assignment.notebook("solutions")).cells]
        if fresh_key != committed_key:
            problems.append(f"solutions/{assignment.id} differs from what nbgrader compiles "
                            f"(edited by hand?): {fix}")
    return problems


# ---------------------------------------------------------------- answers across assignments
MIN_TOKENS = 8   # fewer tokens is an idiom (`loss.backward()`, `logits = model(images)`), not an answer


def answer_lines(assignment: Assignment, root: Path = REPO) -> set[str]:
    """The assignment's distinctive solution lines (notebooks.secret_lines) that say something on
    their own: imports and lines of fewer than MIN_TOKENS Python tokens are boilerplate."""
    def tokens(line):
        try:
            return [t for t in tokenize.generate_tokens(io.StringIO(line).readline)
                    if t.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING)]
        except (tokenize.TokenError, SyntaxError):   # a line of a longer statement: count words
            return line.split()
    solution, _ = nbs.secret_lines(nbs.read(assignment.notebook("source", root)))
    return {line for line in solution
            if not line.startswith(("import ", "from ")) and len(tokens(line)) >= MIN_TOKENS}


def cross_release_leaks(course: Course, root: Path = REPO) -> list[str]:
    """Solution lines of one assignment that another assignment's release shows, unless course.toml
    declares that release to come after the first one's deadline (`release_after = ["<id>"]`)."""
    answers = {aid: answer_lines(a, root) for aid, a in course.assignments.items()}
    problems = []
    for later, assignment in course.assignments.items():
        shown = {line.strip() for cell in nbs.read(assignment.notebook("release", root)).cells
                 for line in cell.source.splitlines()}
        for earlier, lines in answers.items():
            leaked = sorted(lines & shown)
            if earlier == later or not leaked or earlier in assignment.release_after:
                continue
            problems.append(
                f"release/{later} shows {len(leaked)} solution line(s) of {earlier}: "
                + "; ".join(f"`{line}`" for line in leaked)
                + f"\n  publish it after {earlier}'s deadline and say so in course.toml "
                  f"([assignments.{later}] release_after = [\"{earlier}\"]), or take the lines out "
                  f"of source/{later}")
    return problems
