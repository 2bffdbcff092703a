"""Grading where instructors grade without the full sandbox, each mode made here (tests/modes.py):

    root without namespaces   Docker's root (Gradescope's containers): no CAP_SYS_ADMIN, read-only cgroups,
                              a memory limit from outside; student code as an unprivileged uid
    a normal user             a laptop or a university server: no namespaces, no cgroups, no other uid

In each, `python -m tests.modes grade` runs the kit's own `grade_batch` exactly as `make grade` does:
assignments' references and one wrong answer each, graded up to a prefix the grading suite grades
(the one its Gradescope test uses); in resnet_blocks' batch, the hostile cases whose containment
depends on the mode (tests/submissions/hostile.py, `elsewhere`), graded beside the reference and the
wrong answer. Then: reference full marks, no flag; the wrong answer loses points on its own cell
only; each hostile case the outcome its mode states (status, evidence in its output); a second run
of a batch gives the same grades; nothing of the batch still runs. In the normal-user mode a
`kill(-1)` in student code kills the grader itself (SECURITY.md says so): asserted as such.

As a normal user every assignment is graded here. Root without namespaces is where Gradescope
grades: tests/test_gradescope.py runs every assignment's zip in this same emulated container
(reference, untouched release, two wrong answers, two hostile cases each, agreeing with the full
sandbox's grades), so here that mode grades only the batches that zip cannot: resnet_blocks'
(the hostile cases, several students graded side by side) and the re-run (a master course graded
twice), plus the zip under a memory bomb.

The full sandbox (root with namespaces) is the grading suite's own mode (tests/test_grading.py).
"""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import sandbox
from tests import modes
from tests.submissions import hostile, pneumonia_training, resnet_from_scratch, unet_segmentation
from tests.grading_batches import CASES

pytestmark = pytest.mark.slow
WHY_NOT = modes.why_not()
MODES = {hostile.NO_NAMESPACES: "container", hostile.OWN_USER: "normal_user"}
# Per assignment: the prefix it is graded up to, one wrong answer graded there (the Gradescope test's).
PLAN = {
    "resnet_blocks": (None, "adapt_fc_not_replaced"),
    "pneumonia_training": (pneumonia_training.AFTER_EVALUATE, "evaluate_auc_from_hard_labels"),
    "unet_segmentation": (unet_segmentation.STOP["dice_coefficient"], "dice_over_the_whole_batch"),
    "resnet_from_scratch": (resnet_from_scratch.LAST_CHECK, "block_missing_skip"),
}
# The assignments each mode grades here (root without namespaces grades all four in test_gradescope.py).
GRADED = {hostile.NO_NAMESPACES: ["resnet_blocks", "pneumonia_training"], hostile.OWN_USER: list(PLAN)}
CONTAINER_MEMORY = 6 * 2**30              # Gradescope's largest pair: 4 CPUs, 6 GB
# Graded twice, the second run must change nothing: the cheapest batch (a re-run's idempotence is the
# batch machinery's, not an assignment's; 15 s against 18-21 s for the others on the Xeon kind).
RERUN = "pneumonia_training"
# The grading suite's limits with a 5 s cell limit: the endless cell and the output flood run until it
# twice (kernel, verification run) in each mode; the reference's slowest cell takes 0.3-0.6 s on the
# Zen 4 kind, quiet or beside three busy loops, so an honest cell stays far below it.
LIMITS = {**hostile.LIMITS, "cell_timeout": 5}
KILLER = "hostile_kills_everything"


def batch_of(params):
    """The xdist group: one mode's batches run in one worker (conftest)."""
    return f"modes:{params['mode']}"


def build(mode, root):
    """Submission folders, sources and jobs for every batch of `mode`, under `root`."""
    course = load_course()
    jobs = []
    for aid in GRADED[mode]:
        stop_after, wrong = PLAN[aid]
        a = course.assignments[aid]
        source = nbs.prefix(nbs.read(a.notebook("source")), stop_after)
        release = nbs.prefix(nbs.read(a.notebook("release")), stop_after)
        reference = nbs.reference_answers(source)
        folder = root / aid / "submissions"
        folder.mkdir(parents=True)
        nbs.write(nbs.make_submission(release, reference), folder / "reference.ipynb")
        case = next(c for c in CASES[aid] if c.name == wrong)
        nbs.write(nbs.make_submission(release, {**reference, case.cell: case.code}), folder / f"{wrong}.ipynb")
        limits, workers = None, 1
        if aid == "resnet_blocks":            # the hostile cases, beside the reference and the wrong answer
            limits, workers = LIMITS, 2
            for h in hostile.in_mode(mode):
                (folder / f"{h.name}.ipynb").write_bytes(h.build(release, reference))
        source_path = root / aid / f"{aid}.ipynb"
        nbs.write(source, source_path)
        for run in (["first", "second"] if aid == RERUN else ["first"]):
            jobs.append({"assignment": aid, "submissions": str(folder), "source": str(source_path),
                         "out": str(root / aid / f"out-{run}"), "work": str(root / aid / "work"),
                         "limits": limits, "jobs": workers, "run": run})
    return jobs


def run_in_mode(root, jobs, repo, uid=None):
    """Run the jobs one after the other, as root without namespaces (the emulated container) or, with
    `uid`, as that normal user: the first runs in one grader process, the second runs (the re-run)
    in another, as a second `make grade` would; returns the completed process (its output read from
    files)."""
    script = root / "jobs.sh"
    python = f"{sys.executable} -m tests.modes grade"
    runs = {}
    for i, job in enumerate(jobs):
        (root / f"job{i}.json").write_text(json.dumps(job))
        runs.setdefault(job.get("run", "first"), []).append(str(root / f"job{i}.json"))
    script.write_text("set -e\n" + "".join(f"{python} {' '.join(files)}\n" for files in runs.values()))
    env = {**os.environ, "PYTHONPATH": str(repo), "HOME": str(root), "COURSEKIT_CPUS": "2"}
    command = ["bash", str(script)]
    group = None
    if uid:
        modes.chown_tree(root, uid)
        command = modes.normal_user(command, uid)
    else:
        group = sandbox.memory_cgroup(f"container-{os.getpid()}", CONTAINER_MEMORY)   # set from outside
        command = modes.container(command, group)
    leftovers, peak = "", None
    try:
        # Output to files, not pipes: a process the batch leaves behind would hold a pipe open.
        with open(root / "stdout.txt", "w") as out, open(root / "stderr.txt", "w") as err:
            proc = subprocess.run(command, cwd=repo, env=env, stdout=out, stderr=err, timeout=1500)
        peak = modes.peak_memory(group) if group else None
    finally:
        if uid:
            leftovers = subprocess.run(["pgrep", "-U", str(uid)], capture_output=True, text=True).stdout.strip()
            modes.kill_user(uid)
        if group:
            sandbox.release_cgroup(group)
    proc.stdout, proc.stderr = (root / "stdout.txt").read_text(), (root / "stderr.txt").read_text()
    proc.leftovers, proc.peak_memory = leftovers, peak
    return proc


def grade_in_mode(mode):
    """Every batch of `mode`, graded."""
    root = modes.scratch(MODES[mode])
    uid = modes.NORMAL_UID if mode == hostile.OWN_USER else None
    repo = modes.own_copy(REPO, root / "repo", uid) if uid else REPO   # a copy the normal user owns
    jobs = build(mode, root / "batches")
    started = time.monotonic()
    proc = run_in_mode(root, jobs, repo, uid)
    seconds = round(time.monotonic() - started, 1)
    leftovers = subprocess.run(["pgrep", "-f", f"sleep ({hostile.SPRAY[1]}|{hostile.ESCAPEE[2]})"],
                               capture_output=True, text=True).stdout
    leftovers += getattr(proc, "leftovers", "")
    results = {}
    for job in jobs:
        path = Path(job["out"]) / "results.json"
        if path.exists():
            results.setdefault(job["assignment"], []).append(json.loads(path.read_text()))
    run = dict(proc=proc, jobs=jobs, results=results, leftovers=leftovers.strip(), seconds=seconds,
               root=root)
    peak = getattr(proc, "peak_memory", None)
    print(f"{mode}: {seconds} s" + (f", peak memory {peak / 2**30:.2f} GiB" if peak else "")
          + f"\n{proc.stdout[-6000:]}")
    return run


@pytest.fixture(scope="session")
def mode_runs():
    """mode_runs(mode): every batch of `mode`, graded once per session (grade_in_mode)."""
    runs = {}

    def run(mode):
        if mode not in runs:
            runs[mode] = grade_in_mode(mode)
        return runs[mode]

    return run


def needs_modes():
    if WHY_NOT:
        pytest.skip(WHY_NOT)


def mode_table(mode, run):
    """Status and score of every submission of every batch of `mode` (printed at the end of `make test`)."""
    peak = getattr(run["proc"], "peak_memory", None)
    lines = [f"grading mode: {mode} ({run['seconds']:g} s"
             + (f", container peak {peak / 2**30:.2f} GiB incl. file cache" if peak else "") + ")"]
    for aid, reports in run["results"].items():
        for i, report in enumerate(reports):
            where = f"{aid}{' (second run)' if i else ''}"
            for name, r in report["results"].items():
                lines.append(f"  {where:<34} {name:<30} {r['status']:<13} {r['score']:g}/{r['max_score']:g}")
    return "\n".join(lines)


@pytest.mark.parametrize("mode", list(MODES))
def test_every_batch_ran_in_its_mode(mode, request, mode_runs):
    """Every batch finished, in the mode the test made (the summary names it), and left nothing running."""
    needs_modes()
    run = mode_runs(mode)
    request.node.user_properties.append(("grading_table", mode_table(mode, run)))
    assert run["proc"].returncode == 0, run["proc"].stdout[-3000:] + run["proc"].stderr[-5000:]
    assert sorted(run["results"]) == sorted(GRADED[mode]), run["proc"].stderr[-5000:]
    for aid in GRADED[mode]:
        for result in run["results"][aid]:
            assert f"mode: {mode};" in result["isolation"], result["isolation"]
    assert not run["leftovers"], f"processes of the batch still running: {run['leftovers']}"


def totals(result, source):
    """{solution grade_id: (score, max)} over its test cells."""
    out = {}
    for cell in source.cells:
        if nbs.is_solution(cell) and cell.cell_type == "code":
            tests = [nbs.grade_id(t) for t in nbs.test_cells_of(source, nbs.grade_id(cell))]
            out[nbs.grade_id(cell)] = (sum(result["cells"].get(t, 0) for t in tests),
                                       sum(result["cell_max"][t] for t in tests))
    return out


@pytest.mark.parametrize("mode,aid", [(m, aid) for m in MODES for aid in GRADED[m]])
def test_reference_and_wrong_answer(mode, aid, mode_runs):
    """Reference: graded, full marks, no flag. The wrong answer: graded, no flag, points lost on its
    own cell only. The same as in the full sandbox (tests/test_grading.py)."""
    needs_modes()
    run = mode_runs(mode)
    report = run["results"][aid][0]
    stop_after, wrong = PLAN[aid]
    source = nbs.read(Path(next(j["source"] for j in run["jobs"] if j["assignment"] == aid)))
    ref = report["results"]["reference"]
    assert ref["status"] == "graded" and not ref["review"] and not ref["reason"], ref
    assert ref["score"] == ref["max_score"] > 0, ref
    result = report["results"][wrong]
    assert result["status"] == "graded" and not result["review"], result
    case = next(c for c in CASES[aid] if c.name == wrong)
    for cell, (score, maximum) in totals({**result, "cell_max": report["cell_max"]}, source).items():
        if cell == case.cell:
            assert score < maximum, f"{wrong} should lose points on {cell}: {result['cells']}"
        else:
            assert score == maximum, f"{wrong} should keep full marks on {cell}: {result['cells']}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", [c.name for c in hostile.CASES if c.elsewhere])
def test_hostile_case_in_mode(mode, case, mode_runs):
    """Each hostile case whose containment depends on the mode: the outcome its mode states (status,
    and evidence in the kernel's output), graded beside the reference and a wrong answer."""
    needs_modes()
    h = next(c for c in hostile.CASES if c.name == case)
    if mode not in h.elsewhere:
        pytest.skip(f"{case}: no outcome of its own in this mode (see test_kill_everything_*)")
    run = mode_runs(mode)
    result = run["results"]["resnet_blocks"][0]["results"][case]
    status, evidence = h.elsewhere[mode]
    why = "; ".join([result["reason"], *result["review"]])
    assert result["status"] == status, f"{case}: {result['status']} ({why})"
    if evidence:
        executed = Path(run["jobs"][0]["work"]) / "course" / "autograded" / case / "resnet_blocks" / "resnet_blocks.ipynb"
        assert evidence in executed.read_text(), f"{case}: no {evidence!r} in its output"


@pytest.mark.parametrize("mode", list(MODES))
def test_second_run_changes_nothing(mode, mode_runs):
    """Grading the same submissions again gives the same statuses and grades (idempotent)."""
    needs_modes()
    run = mode_runs(mode)
    first, second = run["results"][RERUN]
    simple = lambda r: {s: (v["status"], v["score"], v["cells"]) for s, v in r["results"].items()}
    assert simple(first) == simple(second)
    outs = [Path(j["out"]) for j in run["jobs"] if j["assignment"] == RERUN]
    rows = [list(csv.reader((out / "grades.csv").open())) for out in outs]
    assert rows[0] == rows[1]


def test_kill_everything_as_a_normal_user():
    """As the instructor's own user, with no PID namespace, `os.kill(-1, SIGKILL)` in student code
    kills every process of that user: the grader itself dies and nothing of the batch is graded.
    This is the documented limit of the normal-user mode (SECURITY.md); the test keeps it true."""
    needs_modes()
    h = next(c for c in hostile.CASES if c.name == KILLER)
    a = load_course().assignments["resnet_blocks"]
    source, release = nbs.read(a.notebook("source")), nbs.read(a.notebook("release"))
    reference = nbs.reference_answers(source)
    tmp_path = modes.scratch("kill")
    uid = modes.NORMAL_UID - 1          # not the other normal-user test's: this one kills every process of its uid
    repo = modes.own_copy(REPO, tmp_path / "repo", uid, graded_before=True)   # kill(-1), not a first grading
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbs.write(nbs.make_submission(release, reference), folder / "reference.ipynb")
    (folder / f"{KILLER}.ipynb").write_bytes(h.build(release, reference))
    job = {"assignment": "resnet_blocks", "submissions": str(folder), "out": str(tmp_path / "out"),
           "work": str(tmp_path / "work"), "limits": LIMITS, "jobs": 1}
    proc = run_in_mode(tmp_path, [job], repo, uid)
    assert proc.returncode in (-9, 137), (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert not (tmp_path / "out" / "results.json").exists()


# Gradescope's container, emulated: the zip's own run_autograder, as root without namespaces, the
# source unreadable to others as setup.sh leaves it, the memory of the resource pair set from outside.
# Every assignment's honest and wrong submissions are graded there by tests/test_gradescope.py.
@pytest.mark.parametrize("mode", [hostile.NO_NAMESPACES])
def test_gradescope_zip_in_emulated_container(mode, request):
    """resnet_blocks' Gradescope zip in the emulated container under a memory bomb past the zip's
    cap (course.toml memory_gb): the kit's cap (RLIMIT_DATA) stops it before the container's limit,
    results.json says so; peak memory and time are printed (autograder/README.md quotes them)."""
    needs_modes()
    from coursekit.grading import gradescope

    a = load_course().assignments["resnet_blocks"]
    source, release = nbs.read(a.notebook("source")), nbs.read(a.notebook("release"))
    bomb = next(c for c in hostile.CASES if c.name == "hostile_memory_bomb")
    # past the zip's own cap (course.toml memory_gb) by more than the kernel inherits from the zygote
    size = int((a.memory_gb + 2) * 2**30)
    data = hostile.answer(f"import numpy as np\nhog = np.ones({size}, dtype=np.uint8)")(
        release, nbs.reference_answers(source))
    tmp_path = modes.scratch("gradescope")
    zip_path = gradescope.export("resnet_blocks", tmp_path / "resnet_blocks.zip")
    results, seconds, peak = modes.run_zip(zip_path, tmp_path / "memory_bomb", "resnet_blocks", data)
    status, memory = results["extra_data"]["status"], modes.GRADESCOPE_PAIR[1]
    request.node.user_properties.append((
        "grading_table", f"Gradescope zip in the emulated container:\n  memory_bomb: {status} "
        f"{results['score']:g}, {seconds:.0f} s"
        + (f", peak memory {peak / 2**30:.2f} GiB of {memory / 2**30:g}" if peak else "")))
    expected, _ = bomb.elsewhere[mode]
    assert status == expected, results["output"]
    assert peak is None or peak < memory, "the container's limit, not the kit's cap, stopped it"
