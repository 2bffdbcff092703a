"""Fixture submissions for the grading suite, one module per assignment.

Each module defines CASES: wrong answers (the mistakes students really make), which must lose
points on their own cell's tests and nothing else, and right answers written differently, which
must keep full marks. A wrong answer is usually the reference with one mistake edited in
(`mistake`), so the fixture shows exactly what is wrong.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    cell: str        # grade_id of the solution cell this submission answers differently
    code: str        # the whole cell as the student wrote it
    right: bool      # True: a correct answer written differently (full marks expected)
    # Grade only the notebook up to and including this cell (a test cell id). For answers checked
    # before a long training cell: the suite then grades the prefix, in seconds, not the whole run.
    stop_after: str | None = None
    # Optional, for cells graded in several parts (a quiz): exactly these test cells lose points.
    loses: tuple[str, ...] = ()


def mistake(reference: str, *edits: tuple[str, str]) -> str:
    """The reference solution with each (old, new) edit applied; every `old` must occur."""
    code = reference
    for old, new in edits:
        if old not in code:
            raise ValueError(f"fixture edit does not apply, {old!r} is not in the reference")
        code = code.replace(old, new)
    return code
