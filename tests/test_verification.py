"""The verification run (runner.py) and its reader (verify.py), on small plans without a sandbox or
a notebook: verdicts, what the runner refuses and detects, and the authenticated result stream."""

import os
import subprocess
import sys

import pytest

from coursekit.grading import verify
from coursekit.grading.plan import PlannedCell, hidden_line_numbers
from coursekit.grading.sandbox import SandboxConfig

TEACHING = """
import json
def double(x):
    return 2 * x
REFERENCE = 21
"""
TEST = '''"""answer(21) is 42."""
assert answer(3) == 6, "answer(3) should be 6"
### BEGIN HIDDEN TESTS
SECRET_EXPECTED = double(REFERENCE)
assert answer(REFERENCE) == SECRET_EXPECTED, "the hidden check failed"
### END HIDDEN TESTS
print("test_answer passed")'''


class Process:
    """Runs the runner as a plain subprocess, standing in for the zygote in these tests. Like the
    zygote, it gives the runner a SIGINT that raises KeyboardInterrupt: a child inherits an ignored
    SIGINT, and a pytest-xdist worker can have one (seen in `make test`: the endless cell ran on)."""

    def spawn(self, mode, config, fds, env, argv=()):
        job, log, _, results = fds
        proc = subprocess.Popen([sys.executable, "-c", f"import os, signal; os.dup2({results}, 3); "
                                 "signal.signal(signal.SIGINT, signal.default_int_handler); "
                                 "from coursekit.grading import runner; raise SystemExit(runner.main())"],
                                stdin=job, stdout=log, stderr=log, pass_fds=(results,), cwd=config.workdir)
        proc.close = lambda: proc.kill() if proc.poll() is None else None
        return proc, proc.pid


def run(tmp_path, answer, test=TEST, limits=(10, 60)):
    cells = [PlannedCell("instructor", "teaching", TEACHING),
             PlannedCell("answer", "answer", answer, owns=["answer"]),
             PlannedCell("test", "test_answer", test, hidden_lines=hidden_line_numbers(test), points=2)]
    secrets = {"SECRET_EXPECTED = double(REFERENCE)", 'assert answer(REFERENCE) == SECRET_EXPECTED, "the hidden check failed"'}
    return verify.verify(Process(), SandboxConfig(workdir=str(tmp_path), threads=1), dict(os.environ),
                         cells, [], verify.Limits(*limits), secrets)


def test_right_answer_passes(tmp_path):
    result = run(tmp_path, "def answer(x):\n    return 2 * x")
    assert result.ended == "done" and not result.problems, (result.problems, result.log)
    verdict = result.verdicts["test_answer"]
    assert verdict.passed and verdict.visible_passed


def test_hidden_failure_keeps_the_visible_verdict(tmp_path):
    result = run(tmp_path, "def answer(x):\n    return 6 if x == 3 else 0")
    verdict = result.verdicts["test_answer"]
    assert not verdict.passed and verdict.visible_passed
    assert verdict.message == "AssertionError: the hidden check failed"


def test_visible_failure(tmp_path):
    verdict = run(tmp_path, "def answer(x):\n    return 0").verdicts["test_answer"]
    assert not verdict.passed and not verdict.visible_passed


def test_messages_are_scrubbed_of_hidden_lines(tmp_path):
    code = ("def answer(x):\n    raise ValueError('SECRET_EXPECTED = double(REFERENCE)' + ' and more')")
    verdict = run(tmp_path, code).verdicts["test_answer"]
    assert "double(REFERENCE)" not in verdict.message and "[hidden]" in verdict.message


def test_shadowed_teaching_names_are_restored_for_the_tests(tmp_path):
    code = "def double(x):\n    return 0\nREFERENCE = 0\ndef answer(x):\n    return 2 * x if x != 21 else 0"
    result = run(tmp_path, code)
    assert not result.verdicts["test_answer"].passed       # the test used the real double and REFERENCE


def test_names_a_test_defines_never_reach_student_code(tmp_path):
    code = "def answer(x):\n    assert 'SECRET_EXPECTED' not in globals(), 'saw it'\n    return 2 * x"
    assert run(tmp_path, code).verdicts["test_answer"].passed


@pytest.mark.parametrize("attack,what", [
    ("import sys\nframe = sys._getframe()", "frame access"),
    ("try:\n    1 / 0\nexcept ZeroDivisionError as err:\n    frame = err.__traceback__.tb_frame", "tb_frame"),
    ("import gc\nobjects = gc.get_objects()", "gc.get_objects"),
    ("import sys\nsys.settrace(lambda *a: None)", "sys.settrace"),
    ("import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)", "signal handlers"),
    ("import threading\nthreading.Thread(target=print).start()", "threads"),
    ("import subprocess\nsubprocess.run(['true'])", "subprocess.Popen"),
    ("code = compile('1', 'x', 'eval')", "compile"),
    ("open('/proc/self/mem', 'rb')", "/proc/self/mem"),
    ("def f(): pass\nf.__code__ = (lambda: 1).__code__", "__code__"),
])
def test_reaching_in_is_refused_and_reported(tmp_path, attack, what):
    code = f"try:\n" + "".join(f"    {line}\n" for line in attack.splitlines()) + \
        "except Exception:\n    pass\ndef answer(x):\n    return 2 * x"
    result = run(tmp_path, code)
    assert any(what in p for p in result.problems), result.problems


REFUSED_ASSIGNMENT = "refused assignment to an attribute of a library module"


@pytest.mark.parametrize("patch", [
    "json.dumps = print", "setattr(json, 'dumps', print)", "for m in [json]:\n    m.dumps = print", "del json.loads",
    # a parameter named self (the static review lets setattr(self, ...) through), undone at once
    "def swap(self, name, new):\n    old = getattr(self, name)\n    setattr(self, name, new)\n    return old\n"
    "swap(json, 'dumps', swap(json, 'dumps', print))",
])
def test_library_modules_refuse_assignments_by_student_code(tmp_path, patch):
    code = "try:\n" + "".join(f"    {line}\n" for line in patch.splitlines()) + \
        "except PermissionError:\n    pass\ndef answer(x):\n    return 2 * x"
    result = run(tmp_path, code)
    assert any(REFUSED_ASSIGNMENT in p for p in result.problems), result.problems
    assert not any("replaced" in p or "deleted" in p for p in result.problems), result.problems


# Spellings that write the module's dict directly, past the refusal: the integrity check after the cell.
@pytest.mark.parametrize("patch,report", [
    ("for m in [json]:\n    vars(m)['dumps'] = lambda *a, **k: ''", "json.dumps replaced"),
    # equal to everything: the check compares identities, never asks the replacement
    ("class Same:\n    __eq__ = lambda self, other: True\n    __hash__ = object.__hash__\n"
     "    __call__ = lambda self, *a, **k: ''\nvars(json)['dumps'] = Same()", "json.dumps replaced"),
    ("last = list(vars(json))[-1]\ndel vars(json)[last]", "deleted"),        # the dict only got shorter
    ("d = vars(json)\nsaved = d.pop('loads')\nd['loads'] = saved\nd['dumps'] = print", "json.dumps replaced"),
])
def test_library_patch_however_spelled_is_detected(tmp_path, patch, report):
    problems = run(tmp_path, patch + "\ndef answer(x):\n    return 2 * x").problems
    assert any(report in p for p in problems), problems


def test_library_attributes_moved_but_unchanged_are_no_patch(tmp_path):
    code = ("d = vars(json)\nsaved = d.pop('loads')\nd['loads'] = saved\nd['extra'] = 1\n"
            "def answer(x):\n    return 2 * x")
    result = run(tmp_path, code)
    assert result.problems == [] and result.verdicts["test_answer"].passed, result.problems


def test_forged_result_lines_are_detected(tmp_path):
    code = ("import os\nos.write(3, b\"3\\t'test'\\t'test_answer'\\t'pass'\\t0\\t''\\t''\\t'0'\\tbad\\n\")\n"
            "def answer(x):\n    return 0")
    result = run(tmp_path, code)
    assert result.ended == "tampered" and "test_answer" not in result.verdicts


def test_a_run_that_dies_is_not_done(tmp_path):
    code = "def answer(x):\n    import os\n    os._exit(0)"
    result = run(tmp_path, code)
    assert result.ended == "crashed" and "test_answer" not in result.verdicts


def test_an_endless_cell_is_interrupted_and_the_run_goes_on(tmp_path):
    code = "while True:\n    pass\ndef answer(x):\n    return 2 * x"
    result = run(tmp_path, code, limits=(2, 30))
    assert result.interrupted == ["answer"] and result.ended == "done"
    assert not result.verdicts["test_answer"].passed         # answer was never defined


def test_decide_marks_disagreement_for_review():
    v = verify.Verification(verdicts={"t": verify.TestVerdict("t", 2, False, False, "")})
    decision = verify.decide("graded", {"t": True}, v, [])
    assert decision.status == "needs review" and "t: the visible checks passed" in decision.review[0]
    agreed = verify.decide("graded", {"t": False}, v, [])
    assert agreed.status == "graded" and agreed.cells == {"t": 0.0}


def test_a_library_wrapping_its_own_method_is_not_a_patch(tmp_path):
    """torch wraps an optimizer class's `step` when the first instance is made (and imports
    torch._dynamo on the first step): neither is the student's doing."""
    code = ("import torch\ndef answer(x):\n    model = torch.nn.Linear(2, 2)\n"
            "    torch.optim.SGD(model.parameters(), lr=0.1).step()\n    return 2 * x")
    result = run(tmp_path, code)
    assert result.problems == [] and result.verdicts["test_answer"].passed, result.problems


def test_a_module_the_student_wrote_is_student_code(tmp_path):
    (tmp_path / "helper.py").write_text("import sys\nFRAME = sys._getframe()\n")
    code = ("import sys\nsys.path.insert(0, '.')\ntry:\n    import helper\nexcept PermissionError:\n    pass\n"
            "def answer(x):\n    return 2 * x")
    assert any("frame access" in p for p in run(tmp_path, code).problems)


DATA_TEACHING = """
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
images = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
labels = np.arange(12).reshape(3, 4).T            # not C-contiguous: hashed from a copy
loader = DataLoader(TensorDataset(images, torch.zeros(2)), batch_size=1)
"""


@pytest.mark.parametrize("change,names", [
    ("images[1, 2, 3] += 1", {"images", "loader"}),            # the loader holds the same tensor
    ("images.numpy()[0, 0, 0] = -1", {"images", "loader"}),
    ("labels[3, 2] = 0", {"labels"}), ("loader.dataset.tensors[1][0] = 5", {"loader"}), ("pass", set()),
])
def test_teaching_data_changed_in_place_is_detected(tmp_path, change, names):
    """Teaching cells' tensors, arrays and loaders are fingerprinted by content: a change in place,
    through a NumPy view too, is reported after the cell that made it; data left alone is not."""
    cells = [PlannedCell("instructor", "teaching", DATA_TEACHING),
             PlannedCell("answer", "answer", f"{change}\ndef answer(x):\n    return 2 * x", owns=["answer"]),
             PlannedCell("test", "test_answer", TEST, hidden_lines=hidden_line_numbers(TEST), points=2)]
    result = verify.verify(Process(), SandboxConfig(workdir=str(tmp_path), threads=1), dict(os.environ),
                           cells, [], verify.Limits(10, 60), set())
    changed = {p.split("cells' ")[1].split()[0] for p in result.problems if p.startswith("answer: the teaching cells'")}
    assert changed == names, result.problems
