"""Execute: the student's notebook run by nbgrader autograde, its kernel sandboxed.

The kernel's course holds the notebook *without* hidden tests (`plan.kernel_source`), so the
kernel runs the answer cells, the teaching cells and the visible checks: its outputs become the
student's feedback and its verdicts are compared with the verification run's, but it decides no
points. nbgrader runs in this (trusted) worker process; the kernel comes from the zygote and works
in a folder of its own (`kernel/`), so it cannot touch the files nbgrader writes afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

from .. import nbgrader_run
from .. import notebooks as nbs
from . import layout, sandbox, zygote
from .results import Status

KERNEL_DIED = "the kernel died (crash, exit or memory cap)"
# The kernel process ended before it answered its first message: no student code had run yet (the
# notebook's cells come after). A failure of the grader's machinery, tried once more, never "crashed".
NEVER_STARTED = "Kernel died before replying to kernel_info"
KERNEL_SAID = "the sandboxed kernel's last stderr line: "    # added to the log by run_kernel


class ReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready once the kernel has answered `kernel_info` and an IOPub
    message has arrived (so the IOPub subscription works and no output of the first cell is lost).
    Upstream's `wait_for_ready` then also waits for 0.2 s of IOPub silence at every start, to flush
    the `kernel_info` requests' status messages; nbclient ignores IOPub messages of other requests,
    so here that wait bought nothing and cost 0.2 s of idle time per submission."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)   # the welcome, or a status
                except Empty:
                    pass                                           # not subscribed yet: ask again
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self._async_is_alive():
                raise RuntimeError(NEVER_STARTED)
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class GraderKernelManager(AsyncKernelManager):
    """The grader's kernel manager (nbgrader's Execute uses it): clients that are ready without
    upstream's extra wait (ReadyClient), and a kernel's exit after its shutdown request noticed within
    10 ms instead of 100 ms (upstream polls every 0.1 s; these kernels exit within that)."""

    client_factory = Type(klass=ReadyClient)          # what `client()` makes

    async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = 0.01,
                                     restart: bool = False) -> None:
        await super()._async_finish_shutdown(waittime, pollinterval, restart)


@dataclass
class KernelRun:
    status: Status                                       # graded | timed out | crashed | grader error
    reason: str = ""
    passed: dict[str, bool] = field(default_factory=dict)  # test cell -> its visible checks passed
    manual: list[str] = field(default_factory=list)        # cells a person grades
    recorded: bool = False                                  # the working copy's gradebook has it
    seconds: float = 0.0


def working_copy(template: Path, work: Path, aid: str, student: str, nb) -> Path:
    """A copy of the kernel's course for one submission, the notebook in `submitted/`."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work, ignore=shutil.ignore_patterns("release", ".nbgrader.log"))
    target = layout.notebook(work, "submitted", aid, student)
    target.parent.mkdir(parents=True)
    nbformat.write(nb, target)
    for item in work.iterdir():       # the grader's: a sandbox without a mount namespace passes through
        item.chmod(0o700 if item.is_dir() else 0o600)
    return work


def run_kernel(work: Path, aid: str, student: str, config: sandbox.SandboxConfig, socket_path: str,
               slot_dir: Path, cell_timeout: float, notebook_timeout: float) -> KernelRun:
    """nbgrader autograde of the working copy `work`, in this process; the kernel sandboxed."""
    from nbgrader.converters import Autograde

    runtime = slot_dir / "run"
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(parents=True)
    jupyter = zygote.kernelspec(slot_dir / "jupyter", socket_path, config, runtime)
    os.environ["JUPYTER_PATH"] = str(jupyter)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    settings = nbgrader_run.course_config(work, **{
        "Execute.timeout": int(cell_timeout), "Execute.kernel_name": zygote.KERNEL_NAME,
        "Execute.kernel_manager_class": f"{__name__}.GraderKernelManager",
        # unix sockets at an absolute path: they work across the network namespace
        "KernelManager.transport": "ipc", "KernelManager.ip": str(runtime / "k"),
        "BaseConverter.force": True, "Autograde.create_student": True})
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        kill_sandbox(config)

    zygote.kernel_stderr(jupyter)                   # a former submission's
    start = time.monotonic()
    for attempt in (1, 2):
        watchdog = threading.Timer(notebook_timeout, stop)
        watchdog.start()
        try:
            outcome = nbgrader_run.app(Autograde, work, settings, check=False, assignment_id=aid,
                                       student_id=student)
        finally:
            watchdog.cancel()
            kill_sandbox(config)                 # whatever the kernel left behind
        log = outcome.get("log", "") + outcome.get("error", "")
        said = zygote.kernel_stderr(jupyter)
        if NEVER_STARTED in log and said:
            log += f"\n{KERNEL_SAID}{said}\n"
        if NEVER_STARTED not in log or timed_out.is_set():
            break
        (work / f"autograde-try{attempt}.log").write_text(log)
    (work / "autograde.log").write_text(log)
    result = read_result(work, aid, student, log, timed_out.is_set(), cell_timeout, notebook_timeout)
    result.seconds = round(time.monotonic() - start, 1)
    return result


def kill_sandbox(config: sandbox.SandboxConfig) -> None:
    """Kill this worker's sandboxed kernel: its cgroup, the launchers jupyter_client started (their
    managers then kill the kernel, with everything in its PID namespace or below them) and, without
    a PID namespace, every process of its uid."""
    if config.cgroup:
        sandbox.kill_cgroup(config.cgroup)
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = stat.rsplit(")", 1)[-1].split()[1]
        if parent == me and b"coursekit.grading.zygote\x00launch" in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
    if config.uid is not None and not config.namespaces:
        sandbox.kill_uid(config.uid)


def read_result(work: Path, aid: str, student: str, log: str, timed_out: bool,
                cell_timeout: float, notebook_timeout: float) -> KernelRun:
    """Status and verdicts of one working copy, from its gradebook and autograded notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    if timed_out:
        return KernelRun(Status.TIMED_OUT, f"the notebook ran past its {notebook_timeout:g} s limit")
    executed = layout.notebook(work, "autograded", aid, student)
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        try:
            submission = gb.find_submission(aid, student)
        except MissingEntry:
            return KernelRun(*failure(log, cell_timeout))
        if not executed.exists():                    # nbgrader gave up on it
            return KernelRun(*failure(log, cell_timeout))
        result = KernelRun(Status.GRADED, recorded=True)
        cells = nbformat.read(executed, as_version=4).cells
        raised = {nbs.grade_id(c) for c in cells if c.cell_type == "code" and nbs.grade_id(c)
                  and any(o.get("output_type") == "error" for o in c.get("outputs", []))}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.auto_score is None:          # written answers: graded by a person
                    result.manual.append(grade.name)
                elif grade.cell_type == "code":
                    # The kernel's verdict is whether the check raised. Not nbgrader's auto_score: it also
                    # counts any stderr output as a failure (a progress bar, a warning), which would make
                    # an honest run disagree with the verification run.
                    result.passed[grade.name] = grade.name not in raised
    errors = {o.get("ename") for c in cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"}
    if "CellTimeoutError" in errors or "CellTimeoutError" in log:
        result.status, result.reason = Status.TIMED_OUT, f"a cell ran past {cell_timeout:g} s"
    elif "DeadKernelError" in errors or "DeadKernelError" in log or "kernel died" in log.lower():
        result.status, result.reason = Status.CRASHED, KERNEL_DIED
    return result


def failure(log: str, cell_timeout: float) -> tuple[Status, str]:
    """Status of a submission nbgrader could not finish, read from its log: the student's kernel
    (timed out, crashed), or nbgrader itself (grader error)."""
    if NEVER_STARTED in log:
        said = [line.split(KERNEL_SAID, 1)[1] for line in log.splitlines() if KERNEL_SAID in line]
        return Status.GRADER_ERROR, ("the sandboxed kernel did not start, twice (no student code had run): grade "
                                     "it again" + (f"; it said: {said[-1][:200]}" if said else ""))
    if "Timeout waiting for IOPub output" in log:     # the reply came, the cell's output did not end
        return Status.TIMED_OUT, "a cell's output did not end after its reply came"
    if "CellTimeoutError" in log or "UnresponsiveKernelError" in log:
        return Status.TIMED_OUT, f"a cell ran past {cell_timeout:g} s and could not be interrupted"
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log:
        return Status.CRASHED, KERNEL_DIED
    if "Invalid Signature" in log:          # jupyter_client refused the kernel's messages
        return Status.CRASHED, "the kernel broke the Jupyter protocol (its messages had invalid signatures)"
    lines = [line.strip() for line in log.splitlines() if "Error" in line and "|" not in line]
    return Status.GRADER_ERROR, (lines[-1][:200] if lines else "nbgrader autograde failed")
