"""Resources of the Gradescope autograders (`make bench-gradescope`): each assignment's zip is
exported and its run_autograder grades the reference in a temporary AUTOGRADER_ROOT, like one
Gradescope container; prints wall time, peak memory and the score. As root, in the emulated
container (tests/modes.py: Docker's confinement, the source unreadable as setup.sh leaves it, the
memory of Gradescope's pair set from outside, its CPUs as math threads): peak memory is the
container's (its memory cgroup); elsewhere the PSS of the process tree, sampled.
A benchmark, not a test: the figures go into autograder/README.md next to Gradescope's settings.

    python -m benchmarks.gradescope [--cpus N] [--memory-gb G] [ID...]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import gradescope
from tests import modes


def tree_pss(root_pid: int) -> float:
    """GiB of proportional set size of `root_pid` and all its descendants (shared pages counted once)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 2**20


def main(ids, cpus=2, memory_gb=3.0):
    course = load_course()
    emulated = modes.why_not() is None
    for aid in ids or list(course.assignments):
        a = course.assignments[aid]
        if emulated:
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp).chmod(0o755)
                source = nbs.read(a.notebook("source"))
                notebook = nbs.writes(nbs.make_submission(nbs.read(a.notebook("release")),
                                                          nbs.reference_answers(source))).encode()
                zip_path = gradescope.export(aid, Path(tmp) / f"{aid}.zip")
                root = modes.gradescope_root(zip_path, Path(tmp) / "autograder", aid, notebook)
                proc, seconds, peak = modes.run_gradescope(root, cpus, int(memory_gb * 2**30))
                results = json.loads((root / "results" / "results.json").read_text())
                print(f"{aid}: {seconds:.0f} s, peak memory {(peak or 0) / 2**30:.2f} GiB (no file cache) of {memory_gb:g} "
                      f"(emulated container, {cpus} CPUs, memory_gb {a.memory_gb:g}), "
                      f"{results['extra_data']['status']} {results['score']:g}/"
                      f"{sum(t['max_score'] for t in results['tests']):g}, zip {zip_path.stat().st_size / 2**20:.1f} MB"
                      + ("" if proc.returncode == 0 else f" (exit {proc.returncode})"), flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "autograder"
            zip_path = gradescope.export(aid, Path(tmp) / f"{aid}.zip")
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(root / "source")
            (root / "source" / "run_autograder").chmod(0o755)
            os.symlink(sys.prefix, root / "venv")
            (root / "submission").mkdir()
            source = nbs.read(a.notebook("source"))
            nbs.write(nbs.make_submission(nbs.read(a.notebook("release")), nbs.reference_answers(source)),
                      root / "submission" / f"{aid}.ipynb")
            start = time.monotonic()
            proc = subprocess.Popen([str(root / "source" / "run_autograder")], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env={**os.environ, "AUTOGRADER_ROOT": str(root)})
            peak = 0.0
            while proc.poll() is None:
                peak = max(peak, tree_pss(proc.pid))
                time.sleep(0.5)
            seconds = time.monotonic() - start
            results = json.loads((root / "results" / "results.json").read_text())
            print(f"{aid}: {seconds:.0f} s, peak memory {peak:.1f} GiB (PSS of all its processes), "
                  f"{results['extra_data']['status']} {results['score']:g}/"
                  f"{sum(t['max_score'] for t in results['tests']):g}, zip {zip_path.stat().st_size / 2**20:.1f} MB"
                  + ("" if proc.returncode == 0 else f" (exit {proc.returncode})"), flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gradescope")
    parser.add_argument("ids", nargs="*")
    parser.add_argument("--cpus", type=int, default=2, help="Gradescope pair's CPUs (default 2)")
    parser.add_argument("--memory-gb", type=float, default=3.0, help="Gradescope pair's memory (default 3)")
    args = parser.parse_args()
    main(args.ids, args.cpus, args.memory_gb)
