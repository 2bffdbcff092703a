"""Grading throughput (`make bench-grading`): 40 copies of the resnet_blocks reference plus the
hostile corpus, graded with JOBS=1 and with JOBS=2; prints submissions per minute and the speed-up.
A benchmark, not a test: it prints measured figures and asserts nothing about speed."""

import os
import sys
import tempfile
import time
from pathlib import Path

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading.batch import grade_batch
from coursekit.grading.sandbox import capabilities
from tests.submissions import hostile

COPIES = int(os.environ.get("BENCH_COPIES", 40))


def main(jobs_list=(1, 2)):
    a = load_course().assignments["resnet_blocks"]
    release, source = nbs.read(a.notebook("release")), nbs.read(a.notebook("source"))
    reference = nbs.reference_answers(source)
    cases = hostile.available(capabilities())
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for i in range(COPIES):
            nbs.write(nbs.make_submission(release, reference), folder / f"student{i:03d}.ipynb")
        for case in cases:
            (folder / f"{case.name}.ipynb").write_bytes(case.build(release, reference))
        total = COPIES + len(cases)
        for jobs in jobs_list:
            start = time.monotonic()
            report = grade_batch("resnet_blocks", folder, out=Path(tmp) / f"out{jobs}",
                                 work=Path(tmp) / f"work{jobs}", jobs=jobs, limits=hostile.LIMITS)
            minutes = (time.monotonic() - start) / 60
            full = sum(r.score == r.max_score for r in report.results.values())
            rates[jobs] = total / minutes
            print(f"JOBS={jobs}: {total} submissions ({COPIES} reference copies + {len(cases)} corpus) "
                  f"in {minutes * 60:.0f} s = {rates[jobs]:.1f} submissions/minute; "
                  f"{full} with full marks", flush=True)
    if len(rates) > 1:
        print(f"speed-up JOBS={max(rates)} vs JOBS={min(rates)}: {rates[max(rates)] / rates[min(rates)]:.2f}x "
              f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main(tuple(int(j) for j in sys.argv[1:]) or (1, 2))
