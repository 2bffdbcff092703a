"""`coursekit` command line: the Makefile's targets are thin wrappers over these subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="compile source/ into release/ and solutions/ (stale ones only)")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")

    p = sub.add_parser("check", help="fail if release/ or solutions/ are stale")
    p.add_argument("assignments", nargs="*")

    p = sub.add_parser("tidy", help="normalise source notebooks (outputs, metadata, ids, setup cell)")
    p.add_argument("--check", action="store_true", help="only report notebooks that need tidying")

    p = sub.add_parser("grade", help="autograde a folder of submissions with nbgrader")
    p.add_argument("assignment")
    p.add_argument("submissions", type=Path,
                   help="an LMS zip, or a folder of <student>.ipynb or <student>/<id>.ipynb")
    p.add_argument("--out", type=Path, help="results folder (default autograder/results/<id>)")
    p.add_argument("--jobs", type=int, help="parallel workers (default: number of cores)")
    p.add_argument("--fresh", action="store_true",
                   help="set the course graded so far aside (autograder/work/<id>/course.before-<time>) and "
                        "grade into a new one: after the source notebook's graded cells changed")

    p = sub.add_parser("review", help="list the submissions that need review, or accept/reject one")
    p.add_argument("assignment")
    p.add_argument("student", nargs="?", help="the student to decide on (omit to list them)")
    decision = p.add_mutually_exclusive_group()
    decision.add_argument("--accept", action="store_true", help="the verified points count")
    decision.add_argument("--reject", action="store_true", help="the submission scores 0")
    p.add_argument("--note", default="", help="why (kept in reviews.json)")
    p.add_argument("--out", type=Path, help="results folder (default autograder/results/<id>)")

    p = sub.add_parser("formgrade", help="serve nbgrader's formgrader on the assignment's master course "
                                         "(hand grading, reviews), localhost only, with a token")
    p.add_argument("assignment")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")

    p = sub.add_parser("export", help="rewrite grades.csv, cell_scores.csv and the feedback from the master "
                                      "gradebook (hand grades from formgrader included)")
    p.add_argument("assignment")
    p.add_argument("--out", type=Path, help="results folder (default autograder/results/<id>)")

    p = sub.add_parser("similarity", help="code-similarity report over a class's answer cells (evidence for a "
                                          "person to read, never a verdict)")
    p.add_argument("assignment")
    p.add_argument("submissions", type=Path, help="an LMS zip, or a folder, as for grade")
    p.add_argument("--out", type=Path, help="results folder (default autograder/results/<id>)")

    p = sub.add_parser("gradescope", help="export an assignment as a Gradescope autograder zip")
    p.add_argument("assignment")
    p.add_argument("--out", type=Path, help="the zip (default autograder/gradescope/<id>.zip)")
    p = sub.add_parser("publish-data", help="print each course data file's sha256 and the exact step that "
                                            "publishes it for Colab (course.toml [data.*])")
    p.add_argument("names", nargs="*", help="data names (default: all)")

    p = sub.add_parser("bench", help="run reference notebooks and print their measured figures")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")

    p = sub.add_parser("mutants", help="mutation analysis of the hidden tests: mutants of each graded solution, "
                                       "graded and checked for equivalence (README, Mutation analysis)")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--cell", action="append", help="only this graded cell (repeatable)")
    p.add_argument("--limit", type=int, help="at most this many mutants per cell (a deterministic sample)")
    p.add_argument("--jobs", type=int, help="parallel grading workers (default: number of cores)")

    args = parser.parse_args(argv)
    if args.command == "build":
        from .build import build
        build(args.assignments or None, force=args.force)
    elif args.command == "check":
        from .build import staleness
        from .config import load_course
        course = load_course()
        problems = [p for aid in (args.assignments or course.assignments)
                    for p in staleness(course.assignments[aid])]
        print("\n".join(problems) or "release/ and solutions/ are up to date")
        return 1 if problems else 0
    elif args.command == "tidy":
        from . import notebooks as nbs
        from .config import load_course
        untidy = []
        for assignment in load_course().assignments.values():
            path = assignment.notebook("source")
            nb = nbs.read(path)
            tidied = nbs.tidy(nb, assignment)
            if nb != tidied:
                untidy.append(str(path.relative_to(REPO)))
                if not args.check:
                    nbs.write(tidied, path)
        verb = "needs tidying" if args.check else "tidied"
        print("\n".join(f"{verb}: {p}" for p in untidy) or "source notebooks are tidy")
        return 1 if (args.check and untidy) else 0
    elif args.command == "publish-data":
        from .data import publish_instructions
        text, ok = publish_instructions(args.names or None)
        print(text)
        return 0 if ok else 1
    elif args.command == "bench":
        from .bench import main as bench
        bench(args.assignments or None)
    elif args.command == "mutants":
        from .mutants import main as mutants
        return mutants(args.assignments or None, args.cell, args.limit, args.jobs)
    elif args.command == "grade":
        from .grading.batch import SourceChanged, grade_batch
        from .grading.report import print_summary
        from .grading.results import Status
        try:
            report = grade_batch(args.assignment, args.submissions, out=args.out, jobs=args.jobs,
                                 fresh=args.fresh)
        except SourceChanged as err:
            print(err, file=sys.stderr)
            return 2
        print_summary(report)
        return 3 if any(r.status == Status.GRADER_ERROR for r in report.results.values()) else 0
    elif args.command == "formgrade":
        from .formgrade import launch
        return launch(args.assignment, args.port)
    elif args.command == "export":
        from .formgrade import paths
        from .grading.gradebook import export_with_feedback
        from .grading.report import read_statuses
        course, out = paths(args.assignment)
        out = args.out or out
        if not (course / "gradebook.db").exists():
            print(f"no graded batch of {args.assignment} yet: run `make grade ASSIGNMENT={args.assignment}` first")
            return 2
        export_with_feedback(course, args.assignment, out, read_statuses(out))
        print(f"wrote {out / 'grades.csv'}, {out / 'cell_scores.csv'} and {out / 'feedback'}/ (hand grades included)")
    elif args.command == "similarity":
        from .similarity import report
        page, pairs = report(args.assignment, args.submissions, args.out)
        print(f"wrote {page}: {len(pairs)} pairs, highest first. Evidence for a person to read, never a verdict.")
        for a, b, score in pairs[:5]:
            print(f"  {score:.2f}  {a} ~ {b}")
    elif args.command == "gradescope":
        from .grading.gradescope import export
        path = export(args.assignment, args.out)
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}: upload it under "
              f"Configure Autograder > Zip file upload (see README, Grading on Gradescope)")
    elif args.command == "review":
        from .grading.results import Review
        from .grading.review import main as review
        return review(args.assignment, args.student, Review.ACCEPTED if args.accept else
                      Review.REJECTED if args.reject else None, args.note, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
