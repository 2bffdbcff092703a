"""`make similarity`: a code-similarity report over the answer cells of a class (copydetect).

Each submission's answer cells (the code cells students write: the solution cells of the release)
are put into one file per student; the release's own text of those cells (the stubs, hints and
starter code every student was given) is copydetect's boilerplate, so what they share because we
gave it to them does not count. copydetect fingerprints token k-grams (names normalised, so renamed
variables still match) and scores each pair by the share of one file's fingerprints found in the
other; a pair's score here is the larger of its two directions.

The report is evidence for a person to read, never a verdict: answers to a narrow exercise (a
residual block in PyTorch) look alike when written independently, and a high pair means "read
these two side by side", nothing more.
"""

from __future__ import annotations

import csv
import html
import shutil
import tempfile
from pathlib import Path

import nbformat

from . import REPO
from . import notebooks as nbs
from .config import load_course

NOTICE = ("<div style='border:2px solid #c60;padding:8px;margin:8px;font-family:sans-serif'>"
          "<b>Evidence for a person to read, never a verdict.</b> Pairs of submissions whose answer cells "
          "share code, highest first (score: the share of one submission's answer code, after the release's "
          "own starter code is removed, that is also in the other's). Independent answers to a narrow "
          "exercise look alike; read a pair side by side before concluding anything, and talk to the "
          "students. Every pair's score: similarity.csv beside this page.</div>")


def answer_code(nb: nbformat.NotebookNode, answer_ids: list[str]) -> str:
    """The student's code answer cells, in order, each under a comment naming its cell."""
    cells = nbs.cells_by_grade_id(nb)
    return "\n\n".join(f"# ---- {gid}\n{cells[gid].source}" for gid in answer_ids
                       if gid in cells and cells[gid].cell_type == "code")


def collect(aid: str, submissions: Path, scratch: Path) -> dict[str, Path]:
    """{student: notebook} from a folder or an LMS zip, as `make grade` takes them."""
    from .grading import intake

    if submissions.is_file():
        course = scratch / "course"
        course.mkdir()
        shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
        found, _ = intake.collect_zip(aid, submissions, course)
    else:
        found, _ = intake.find_submissions(aid, submissions)
    return found


def report(aid: str, submissions: Path, out: Path | None = None) -> tuple[Path, list[tuple[str, str, float]]]:
    """similarity.html (copydetect's report, highest pairs first) and similarity.csv (every pair)
    under `out` (default autograder/results/<id>/); returns the page and [(a, b, score)], highest first."""
    from copydetect import CopyDetector

    from .grading import layout

    a = load_course().assignments[aid]
    out = out or layout.results_folder(aid)
    if not submissions.exists():
        raise SystemExit(f"no submissions at {submissions}: make similarity ASSIGNMENT={aid} SUBMISSIONS=<zip|dir>")
    release = nbs.read(a.notebook("release"))
    answer_ids = [nbs.grade_id(c) for c in release.cells if nbs.is_solution(c) and c.cell_type == "code"]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ck-similarity-") as tmp:
        scratch = Path(tmp)
        code_dir, boilerplate = scratch / "answers", scratch / "boilerplate"
        code_dir.mkdir()
        boilerplate.mkdir()
        (boilerplate / "release.py").write_text(answer_code(release, answer_ids))
        for student, path in sorted(collect(aid, submissions, scratch).items()):
            try:
                nb = nbformat.read(path, as_version=4)
            except Exception:                          # not a notebook: nothing to compare
                continue
            (code_dir / f"{student}.py").write_text(answer_code(nb, answer_ids))
        detector = CopyDetector(test_dirs=[str(code_dir)], ref_dirs=[str(code_dir)],
                                boilerplate_dirs=[str(boilerplate)], extensions=["py"], display_t=0.0,
                                autoopen=False, silent=True, out_file=str(out / "similarity.html"))
        detector.run()
        names = [Path(f).stem for f in detector.test_files]
        index = {Path(f).stem: i for i, f in enumerate(detector.ref_files)}
        pairs = []
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                j = index[second]         # [i, j]: (share of first in second, share of second in first)
                score = max(detector.similarity_matrix[i, j, 0], detector.similarity_matrix[i, j, 1])
                pairs.append((*sorted((first, second)), float(score)))
        pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
        detector.generate_html_report()
    page = out / "similarity.html"
    text = page.read_text()
    at = text.find(">", text.find("<body")) + 1
    table = "".join(f"<tr><td>{s:.2f}</td><td>{html.escape(x)}</td><td>{html.escape(y)}</td></tr>"
                    for x, y, s in pairs)
    summary = (f"<div style='margin:8px;font-family:sans-serif'><h2>{html.escape(aid)}: every pair, highest first"
               f"</h2><table id='coursekit-pairs' border='1' cellpadding='4'><tr><th>score</th><th>student</th>"
               f"<th>student</th></tr>{table}</table></div>")
    page.write_text(text[:at] + NOTICE + summary + text[at:])
    with (out / "similarity.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_a", "student_b", "score"])
        writer.writerows((x, y, f"{s:.3f}") for x, y, s in pairs)
    return page, pairs
