"""Hostile and broken submissions of resnet_blocks, graded in the same batch as every other fixture.

Each one must leave the batch running, get a clear status (and, where it matters, leave evidence in
its own output that the attack was contained), change nothing outside its working copy, and leave
every other student's grade as expected. Hostile code goes at the top of the `residual_block`
answer, followed by the reference answer, so a contained attack costs the attacker nothing else.
"""

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from coursekit import REPO
from coursekit import notebooks as nbs

# Limits the grading suite grades with (short, so the corpus runs in minutes).
LIMITS = {"cell_timeout": 10, "notebook_timeout": 90, "memory_gb": 2}
HOST_TRACES = [REPO / "PWNED", Path.home() / "PWNED", Path("/tmp/coursekit-pwned"),
               Path("/var/tmp/coursekit-pwned")]
# The processes the spraying cases leave behind, named by this test process (sleep takes "4242.<pid>"
# seconds): what a batch graded at the same time by the other test worker leaves is not ours.
SPRAY = ("sleep", f"4242.{os.getpid()}")
ESCAPEE = ("setsid", "sleep", f"4243.{os.getpid()}")


@dataclass(frozen=True)
class Hostile:
    name: str
    expect: str                                  # status the submission must get
    build: Callable[[dict, dict], bytes]         # (release notebook, reference answers) -> file bytes
    evidence: str | None = None                  # text its executed output must show
    reason: str | None = None                    # text its status reason must contain
    needs: str | None = None                     # sandbox capability it relies on ("namespaces", "cgroup")
    full_marks: bool = False                     # contained, so the reference code under it scores in full
    # Where a grading mode contains it differently (tests/test_grading_modes.py): {mode: (status, evidence)}
    elsewhere: dict = field(default_factory=dict)


def answer(code: str) -> Callable[[dict, dict], bytes]:
    """A submission whose residual_block answer starts with `code`, then the reference."""
    def build(release, reference):
        nb = nbs.make_submission(release, {**reference,
                                           "residual_block": code + "\n\n" + reference["residual_block"]})
        return nbformat.writes(nb).encode()
    return build


def notebook(edit: Callable) -> Callable[[dict, dict], bytes]:
    """A submission made by editing the reference submission's notebook structure."""
    def build(release, reference):
        nb = copy.deepcopy(nbs.make_submission(release, reference))
        edit(nb)
        return nbformat.writes(nb).encode()
    return build


def raw(data: bytes) -> Callable[[dict, dict], bytes]:
    return lambda release, reference: data


def _delete(gid):
    return lambda nb: nb.cells.remove(next(c for c in nb.cells if c.id == gid))


def _duplicate(gid):
    def edit(nb):
        i = [c.id for c in nb.cells].index(gid)
        twin = copy.deepcopy(nb.cells[i])
        twin.id = f"{gid}-copy"
        nb.cells.insert(i + 1, twin)
    return edit


def _reorder(nb):
    cells = {c.id: c for c in nb.cells}
    nb.cells.remove(cells["adapt_resnet18"])
    nb.cells.insert(nb.cells.index(cells["residual_block"]), cells["adapt_resnet18"])


def _retype(nb):
    cell = next(c for c in nb.cells if c.id == "adapt_resnet18")
    cell.cell_type = "markdown"
    cell.pop("outputs")
    cell.pop("execution_count")


def _edit_test(nb):
    next(c for c in nb.cells if c.id == "test_residual_block_behaviour").source = "pass"


def _clear_metadata(nb):
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)


def _kernel(nb):
    nb.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia 1.9", "language": "julia"}


def _huge_output(nb):
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (200 * 2**20))]


OTHER_ASSIGNMENT = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    {"cell_type": "code", "id": "unet", "metadata": {"nbgrader": {
        "grade": False, "solution": True, "locked": False, "grade_id": "unet", "schema_version": 3}},
     "source": "class UNet: pass", "outputs": [], "execution_count": None}]}).encode()

BOMB_BYTES = min(2 * int(LIMITS["memory_gb"] * 2**30), 8 * 2**30)   # twice the cap, never > 8 GB
# The grading modes other than the full sandbox (coursekit.grading.sandbox.Capabilities.mode).
NO_NAMESPACES, OWN_USER = "unprivileged uid, no namespaces", "your own user, limits only"
# Without a memory cgroup an allocation past the cap fails in the student's own process (RLIMIT_DATA):
# the cell raises, the kernel goes on, the answer scores nothing.
ALLOCATION_FAILS = ("graded", "Unable to allocate")

CASES = [
    Hostile("hostile_infinite_loop", "timed out", answer("while True:\n    pass"),
            elsewhere={NO_NAMESPACES: ("timed out", None), OWN_USER: ("timed out", None)}),
    Hostile("hostile_ignores_interrupt", "needs review", answer(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
        reason="imports signal"),
    Hostile("hostile_sys_exit", "needs review", answer("import sys\nsys.exit(3)"), reason="sys.exit"),
    Hostile("hostile_raise_systemexit", "graded", answer("raise SystemExit(1)")),
    Hostile("hostile_os_exit", "needs review", answer("import os\nos._exit(1)"), reason="os._exit"),
    Hostile("hostile_segfault", "needs review", answer("import ctypes\nctypes.string_at(0)"), reason="ctypes"),
    Hostile("hostile_memory_bomb", "crashed", answer(
        f"import numpy as np\nhog = np.ones({BOMB_BYTES}, dtype=np.uint8)"), needs="cgroup",
        elsewhere={NO_NAMESPACES: ALLOCATION_FAILS, OWN_USER: ALLOCATION_FAILS}),
    # Processes until the process limit refuses the next one (BlockingIOError): sleepers, started
    # the cheap way (posix_spawn), left for the grader to kill with everything the sandbox started.
    Hostile("hostile_fork_bomb", "needs review", answer(
        "import os\n"
        "for _ in range(100000):\n"
        f"    os.posix_spawn('/bin/sleep', {list(SPRAY)!r}, {{}})"), reason="os.posix_spawn",
        elsewhere={NO_NAMESPACES: ("needs review", None), OWN_USER: ("needs review", None)}),
    # Output without end, flushed line by line: the grader keeps 4 MB of the kernel's (ExecuteWithOutputCap)
    # until the cell's time limit; the verification run's log stops at its file-size limit, which ends
    # that run early where the kernel went on: needs review.
    Hostile("hostile_output_flood", "needs review", answer(
        "while True:\n    print('flood ' * 2000, flush=True)"), evidence="output truncated by the grader",
        # Under load the flooding kernel outruns the grader and ZeroMQ drops the cell's last messages:
        # the grader does not wait for them once the cell is capped (ExecuteWithOutputCap), in every mode.
        elsewhere={NO_NAMESPACES: ("needs review", "output truncated by the grader"),
                   OWN_USER: ("needs review", "output truncated by the grader")}),
    # kill(-1): every process the kernel may signal. Its own PID namespace (full sandbox) or its own
    # uid (no namespaces) leave it nothing else to kill; as the instructor's own user it kills the
    # grader itself: tests/test_grading_modes.py asserts exactly that (SECURITY.md).
    Hostile("hostile_kills_everything", "needs review", answer(
        "import os, signal\nos.kill(-1, signal.SIGKILL)"), reason="os.kill", full_marks=False,
        elsewhere={NO_NAMESPACES: ("needs review", None)}),
    Hostile("hostile_process_spray", "needs review", answer(
        "import subprocess\n"
        f"sleepers = [subprocess.Popen({list(SPRAY)!r}) for _ in range(50)]\n"
        f"escapee = subprocess.Popen({list(ESCAPEE)!r})"), reason="subprocess"),
    Hostile("hostile_network", "needs review", answer(
        "import urllib.request\n"
        "try:\n"
        "    urllib.request.urlopen('https://pypi.org/simple/', timeout=5)\n"
        "    print('NETWORK OPEN')\n"
        "except Exception as err:\n"
        "    print('NETWORK BLOCKED', type(err).__name__)"), evidence="NETWORK BLOCKED", needs="namespaces"),
    Hostile("hostile_writes_outside", "graded", answer(
        "import os\n"
        f"for target in {[str(p) for p in HOST_TRACES]!r}:\n"
        "    try:\n"
        "        open(target, 'w').write('pwned')\n"
        "        print('WROTE', target)\n"
        "    except OSError as err:\n"
        "        print('WRITE BLOCKED', type(err).__name__)"), needs="namespaces", full_marks=True),
    Hostile("hostile_deletes_course", "graded", answer(
        "import os, shutil\n"
        f"for tree in [{str(REPO / 'source')!r}, '../../../source', '../../../gradebook.db', '../gradebook.db',\n"
        f"             {str(REPO / 'nbgrader_config.py')!r}, '../../../nbgrader_config.py', '../autograded']:\n"
        "    try:\n"
        "        shutil.rmtree(tree) if os.path.isdir(tree) else os.remove(tree)\n"
        "        print('DELETED', tree)\n"
        "    except OSError as err:\n"
        "        print('DELETE BLOCKED', type(err).__name__)"), needs="namespaces", full_marks=True),
    Hostile("hostile_overwrites_gradebook", "graded", answer(
        f"for db in ['../../../gradebook.db', '../gradebook.db', {str(REPO / 'gradebook.db')!r},\n"
        f"           {str(REPO / 'autograder' / 'work' / 'resnet_blocks' / 'course' / 'gradebook.db')!r}]:\n"
        "    try:\n"
        "        open(db, 'wb').write(b'not a database')\n"
        "        print('OVERWROTE', db)\n"
        "    except OSError as err:\n"
        "        print('OVERWRITE BLOCKED', type(err).__name__)"), needs="namespaces", full_marks=True),
    Hostile("hostile_symlinks_grader_output", "graded", answer(
        "import os\n"
        "for name in ['coursekit_artefacts', 'resnet_blocks.ipynb', '../autograded/x']:\n"
        "    try:\n"
        f"        os.symlink({str(REPO / 'source' / 'resnet_blocks' / 'resnet_blocks.ipynb')!r}, name)\n"
        "    except OSError as err:\n"
        "        print('SYMLINK FAILED', type(err).__name__)"), needs="namespaces", full_marks=True),
    Hostile("hostile_reads_hidden_tests", "graded", answer(
        "leaked = []\n"
        f"for path in [{str(REPO / 'source' / 'resnet_blocks' / 'resnet_blocks.ipynb')!r},\n"
        "             '../../../source/resnet_blocks/resnet_blocks.ipynb', '../source/resnet_blocks/resnet_blocks.ipynb',\n"
        "             '../../../gradebook.db', '../gradebook.db']:\n"
        "    try:\n"
        "        leaked.append(open(path, 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        "print('HIDDEN TESTS LEAKED' if any(b'HIDDEN' in x for x in leaked) else 'HIDDEN TESTS UNREADABLE')"),
        evidence="HIDDEN TESTS UNREADABLE", needs="namespaces", full_marks=True),
    Hostile("hostile_monkeypatches_torch", "needs review", answer(
        "torch.allclose = lambda *args, **kwargs: True"), reason="assigns torch.allclose"),
    Hostile("hostile_redefines_checks", "graded", answer(
        "def check_block_shape(*args, **kwargs):\n    return None"), full_marks=True),
    Hostile("broken_deleted_test_cell", "graded", notebook(_delete("test_residual_block_behaviour")),
            reason="restored", full_marks=True),
    Hostile("broken_duplicated_answer", "graded", notebook(_duplicate("residual_block")), reason="copy",
            full_marks=True),
    Hostile("broken_reordered_cells", "graded", notebook(_reorder), full_marks=True),
    Hostile("broken_retyped_answer", "graded", notebook(_retype)),
    Hostile("broken_edited_locked_test", "graded", notebook(_edit_test), full_marks=True),
    Hostile("broken_cleared_metadata", "graded", notebook(_clear_metadata), reason="restored", full_marks=True),
    Hostile("broken_wrong_kernel", "graded", notebook(_kernel), full_marks=True),
    Hostile("broken_invalid_json", "malformed", raw(b'{"cells": [ this is not json')),
    Hostile("broken_empty_file", "malformed", raw(b"")),
    Hostile("broken_huge_output", "malformed", notebook(_huge_output), reason="too large"),
    Hostile("broken_other_assignment", "malformed", raw(OTHER_ASSIGNMENT), reason="not a notebook of this"),
]

# Full marks expected: the attack was contained (or the damage repaired) and the reference ran.
FULL_MARKS = {c.name for c in CASES if c.full_marks}


def in_mode(mode: str) -> list[Hostile]:
    """The cases whose containment depends on the grading mode, with an outcome stated for `mode`."""
    return [c for c in CASES if mode in c.elsewhere]


def available(capabilities) -> list[Hostile]:
    """The cases this machine can contain: destructive ones only run inside the sandbox."""
    return [c for c in CASES if c.needs is None or getattr(capabilities, c.needs)]
