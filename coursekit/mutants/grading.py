"""Grading the mutants through the kit's own path (one `grade_batch` per assignment and prefix),
with a store of verdicts per source prefix so that a rerun grades only new mutants; `main`, the command."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import shutil
import time
from pathlib import Path

from .. import notebooks as nbs
from ..config import load_course
from .contracts import CONTRACTS, Contract, equivalent
from .operators import generate, sample
from .report import TARGET, CellRow, print_table, write_report


def stop_of(source, cell: str, contract: Contract) -> str:
    return contract.stop_after or nbs.test_cells_of(source, cell)[-1].id


def run(assignment_id: str, cells: list[str] | None = None, limit: int | None = None,
        jobs: int | None = None, out: Path | None = None, work: Path | None = None) -> list[CellRow]:
    """Generate, check and grade the mutants of one assignment; write <out>/<id>.md and .csv."""
    from ..grading.batch import grade_batch
    a = load_course().assignments[assignment_id]
    source, release = nbs.read(a.notebook("source")), nbs.read(a.notebook("release"))
    reference = nbs.reference_answers(source)
    graded = [gid for gid in reference if nbs.test_cells_of(source, gid)]
    missing = set(graded) - set(CONTRACTS.get(assignment_id, {}))
    if missing:
        raise KeyError(f"{assignment_id}: no entry in coursekit.mutants.CONTRACTS for {sorted(missing)}: "
                       "add one (how to call the cell, or why it cannot be sampled)")
    if cells:
        unknown = set(cells) - set(graded)
        if unknown:
            raise KeyError(f"{assignment_id} has no graded cell {sorted(unknown)}; graded cells: {graded}")
    rows, by_stop = {}, {}
    for gid in [g for g in graded if not cells or g in cells]:
        contract = CONTRACTS[assignment_id][gid]
        started = time.monotonic()
        chosen = sample(generate(gid, reference[gid]), limit, f"{assignment_id}:{gid}")
        row = rows[gid] = CellRow(gid, len(chosen), equivalent=None if contract.check is None else 0)
        needs = [reference[n] for n in contract.needs]
        if contract.check is not None:
            same, why = equivalent(contract, reference[gid], reference[gid], needs)
            if not same:
                raise RuntimeError(f"{assignment_id}/{gid}: the reference differs from itself ({why}): "
                                   "fix its entry in coursekit.mutants.CONTRACTS")
        for m in chosen:
            same, why = (False, contract.why) if contract.check is None else equivalent(contract, reference[gid], m.code, needs)
            row.details.append(dict(mutant=m, equivalent=same, why=why, killed=False, status="", lost=""))
        row.seconds += time.monotonic() - started
        print(f"{assignment_id}/{gid}: {len(chosen)} mutants, equivalence checked in {row.seconds:.0f} s", flush=True)
        by_stop.setdefault(stop_of(source, gid, contract), []).append(gid)

    from ..grading import layout

    work = work or layout.WORK / "mutants" / assignment_id
    out = out or layout.RESULTS / "mutants"
    for stop, gids in by_stop.items():
        started = time.monotonic()
        src_prefix, rel_prefix = nbs.prefix(source, stop), nbs.prefix(release, stop)
        # Earlier gradings are reused only against the same hidden tests: one folder per source prefix.
        stage = work / _digest(nbs.writes(src_prefix))[:12]
        answers = {g: c for g, c in reference.items() if g in nbs.cells_by_grade_id(rel_prefix)}
        notebooks = {d["mutant"].name: nbs.writes(nbs.make_submission(rel_prefix, {**answers, gid: d["mutant"].code}))
                     for gid in gids for d in rows[gid].details}
        store = graded_store(stage, stop)
        todo = {name: text for name, text in notebooks.items() if _digest(text) not in store}
        if todo:
            folder = stage / f"submissions-{stop}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            nbs.write(nbs.make_submission(rel_prefix, answers), folder / "reference.ipynb")
            for name, text in todo.items():
                (folder / f"{name}.ipynb").write_text(text)
            source_path = stage / f"{assignment_id}-{stop}.ipynb"
            nbs.write(src_prefix, source_path)
            report = grade_batch(assignment_id, folder, out=stage / f"results-{stop}", work=stage / f"work-{stop}",
                                 source=source_path, jobs=jobs)
            ref = report.results["reference"]
            if ref.score != ref.max_score:
                raise RuntimeError(f"{assignment_id}: the reference scored {ref.score}/{ref.max_score} up to {stop} "
                                   f"({ref.status} {ref.reason}): fix the notebook before analysing mutants")
            share = (time.monotonic() - started) / len(todo)
            for name, text in todo.items():
                r = report.results[name]
                store[_digest(text)] = dict(cells=r.cells, status=r.status, seconds=share)
            save_store(stage, stop, store)
        points = {c.id: float(nbs.nbgrader(c).get("points", 0)) for c in src_prefix.cells if nbs.is_test(c)}
        for gid in gids:
            tests = [t.id for t in nbs.test_cells_of(src_prefix, gid)]
            rows[gid].tests = tests
            for d in rows[gid].details:
                r = store[_digest(notebooks[d["mutant"].name])]
                lost = [t for t in tests if r["cells"].get(t, 0) < points[t]]
                d.update(killed=bool(lost), status=r["status"], lost=" ".join(lost))
                rows[gid].seconds += r["seconds"]
        write_report(assignment_id, [rows[g] for g in rows if rows[g].tests], out, limit, cells)   # so far
    result = [rows[g] for g in rows]
    for row in result:
        row.killed = sum(d["killed"] for d in row.details)
        row.survived = row.mutants - row.killed
        if row.equivalent is not None:
            row.equivalent = sum(d["equivalent"] for d in row.details)
        row.equivalent_lost = sum(d["equivalent"] and d["killed"] for d in row.details)
    with (work / "rows.pickle").open("wb") as f:      # the raw results, should a report need redoing
        pickle.dump(result, f)
    write_report(assignment_id, result, out, limit, cells)
    return result


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def graded_store(work: Path, stop: str) -> dict:
    """{sha256 of a mutant's notebook: its grading} from earlier runs: an interrupted or repeated run
    grades only the notebooks not graded before. Also adopts a batch that finished before the store
    was written (its submissions and cell_scores.csv)."""
    path = work / f"graded-{stop}.json"
    if path.exists():
        return json.loads(path.read_text())
    store, scores = {}, work / f"results-{stop}" / "cell_scores.csv"
    seconds = {}
    if (work / f"results-{stop}" / "status.csv").exists():
        from ..grading.cpus import cpu_budget
        with (work / f"results-{stop}" / "status.csv").open() as f:      # worker seconds, shared by the workers
            seconds = {r["student"]: float(r["seconds"] or 0) / cpu_budget() for r in csv.DictReader(f)}
    if scores.exists():
        with scores.open() as f:
            for row in csv.DictReader(f):
                notebook = work / f"submissions-{stop}" / f"{row['student']}.ipynb"
                if row["student"] != "reference" and notebook.exists():
                    cells = {k: float(v) for k, v in row.items() if k not in ("student", "status") and v != ""}
                    store[_digest(notebook.read_text())] = dict(cells=cells, status=row["status"],
                                                               seconds=seconds.get(row["student"], 0.0))
    return store


def save_store(work: Path, stop: str, store: dict) -> None:
    (work / f"graded-{stop}.json").write_text(json.dumps(store))


def main(assignments: list[str] | None, cells: list[str] | None, limit: int | None, jobs: int | None) -> int:
    course = load_course()
    ids = assignments or list(course.assignments)
    missed = False
    for aid in ids:
        wanted = [c for c in cells or [] if c in CONTRACTS.get(aid, {})]
        if cells and not wanted:
            continue
        started = time.monotonic()
        rows = run(aid, cells=wanted or None, limit=limit, jobs=jobs)
        print_table(aid, rows)
        stem = "-".join([aid, *wanted])
        print(f"  {sum(r.mutants for r in rows)} mutants in {(time.monotonic() - started) / 60:.1f} min; report: "
              f"autograder/results/mutants/{stem}.md and .csv")
        missed |= any(r.rate is not None and (r.rate < TARGET or r.equivalent_lost) for r in rows)
    return 1 if missed else 0
