"""The mutants' rows per graded cell (CellRow) and their table: printed, and written as Markdown and CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .contracts import CONTRACTS


TARGET = 0.95           # kill rate wanted among the non-equivalent mutants of every cell


@dataclass
class CellRow:
    cell: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int | None = 0          # None: the contract cannot be sampled
    equivalent_lost: int = 0
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        nonequivalent = [d for d in self.details if not d["equivalent"]]
        return sum(d["killed"] for d in nonequivalent) / len(nonequivalent) if nonequivalent else None


COLUMNS = ["cell", "mutants", "killed", "survived", "equivalent", "equivalent lost points",
           "kill rate (non-equivalent)", "target 95 %", "minutes"]


def table_rows(rows: list[CellRow]) -> list[list[str]]:
    out = []
    for r in rows:
        rate = r.rate
        out.append([r.cell, str(r.mutants), str(r.killed), str(r.survived),
                    "n/a" if r.equivalent is None else str(r.equivalent), str(r.equivalent_lost),
                    "–" if rate is None else f"{100 * rate:.1f} %",
                    "–" if rate is None else ("met" if rate >= TARGET and not r.equivalent_lost else "NOT met"),
                    f"{r.seconds / 60:.1f}"])
    return out


def render(assignment_id: str, rows: list[CellRow], limit: int | None = None) -> str:
    """The markdown report: the table, then every survivor with its diff line and a reason slot."""
    lines = [f"# Mutation analysis: {assignment_id}", ""]
    if limit:
        lines += [f"At most {limit} mutants per cell (a deterministic sample).", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    for r in rows:
        if r.equivalent is None:
            lines += ["", f"`{r.cell}`: equivalence not sampled ({CONTRACTS[assignment_id][r.cell].why})."]
    for r in rows:
        survivors = [d for d in r.details if not d["killed"] or (d["equivalent"] and d["killed"])]
        if not survivors:
            continue
        lines += ["", f"## {r.cell}: survivors and equivalent mutants that lost points",
                  f"(graded tests: {', '.join(r.tests)})", "",
                  "| mutant | operator | change | equivalent | lost | reason |", "|---|---|---|---|---|---|"]
        for d in survivors:
            m = d["mutant"]
            eq = "n/a" if r.equivalent is None else ("yes" if d["equivalent"] else f"no: {d['why']}")
            lines.append(f"| {m.name} | {m.operator} | `{m.diff.replace('|', '¦')}` | {eq.replace('|', '¦')} | "
                         f"{d['lost'] or '–'} |  |")
    return "\n".join(lines) + "\n"


def write_report(assignment_id: str, rows: list[CellRow], out: Path, limit: int | None = None,
                 cells: list[str] | None = None) -> Path:
    """<out>/<id>.md and .csv; <id>-<cell>....md for a run of some cells (it replaces no full report)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "-".join([assignment_id, *(cells or [])])
    (out / f"{stem}.md").write_text(render(assignment_id, rows, limit))
    with (out / f"{stem}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cell", "mutant", "operator", "line", "before", "after", "equivalent", "why",
                         "killed", "status", "lost", "reason"])
        for r in rows:
            for d in r.details:
                m = d["mutant"]
                writer.writerow([r.cell, m.name, m.operator, m.line, m.before, m.after,
                                 "n/a" if r.equivalent is None else d["equivalent"], d["why"], d["killed"],
                                 d["status"], d["lost"], ""])
    return out / f"{stem}.md"


def print_table(assignment_id: str, rows: list[CellRow]) -> None:
    body = [COLUMNS, *table_rows(rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    print(f"{assignment_id}:")
    for line in body:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)))
