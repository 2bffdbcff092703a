"""Grading throughput (`make bench-grading`): copies of an assignment's reference (resnet_blocks by
default, 40 copies) plus, for resnet_blocks, the hostile corpus, graded with each JOBS given; prints
submissions per minute, the speed-up, and the mean time per submission of the kernel run and of the
verification run. A benchmark, not a test: it prints measured figures and asserts nothing.

    python -m benchmarks.grading [--assignment ID] [--copies N] [--no-corpus] JOBS...
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch
from coursekit.grading.sandbox import capabilities
from tests.submissions import hostile


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--assignment", default="resnet_blocks")
    parser.add_argument("--copies", type=int, default=int(os.environ.get("BENCH_COPIES", 40)))
    parser.add_argument("--no-corpus", action="store_true", help="reference copies only")
    args = parser.parse_args(argv)
    a = load_course().assignments[args.assignment]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    reference = nbs.reference_answers(source)
    cases = [] if args.no_corpus or a.id != "resnet_blocks" else hostile.available(capabilities())
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for i in range(args.copies):
            nbs.write(nbs.make_submission(release, reference), folder / f"student{i:03d}.ipynb")
        for case in cases:
            (folder / f"{case.name}.ipynb").write_bytes(case.build(release, reference))
        total = args.copies + len(cases)
        for jobs in args.jobs:
            start = time.monotonic()
            report = grade_batch(a.id, folder, out=Path(tmp) / f"out{jobs}", work=Path(tmp) / f"work{jobs}",
                                 jobs=jobs, limits=hostile.LIMITS if cases else None)
            minutes = (time.monotonic() - start) / 60
            copies = [r for name, r in report.results.items() if name.startswith("student")]
            full = sum(r.score == r.max_score and r.status == "graded" for r in copies)
            rates[jobs] = total / minutes
            print(f"{a.id} JOBS={jobs}: {total} submissions ({args.copies} reference copies + {len(cases)} corpus) "
                  f"in {minutes * 60:.0f} s = {rates[jobs]:.1f} submissions/minute; {full}/{len(copies)} copies "
                  f"graded with full marks; per reference copy: kernel run "
                  f"{statistics.mean(r.kernel_seconds for r in copies):.1f} s, verification run "
                  f"{statistics.mean(r.verify_seconds for r in copies):.1f} s, whole "
                  f"{statistics.mean(r.seconds for r in copies):.1f} s", flush=True)
    if len(rates) > 1:
        print(f"speed-up JOBS={max(rates)} vs JOBS={min(rates)}: {rates[max(rates)] / rates[min(rates)]:.2f}x "
              f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
