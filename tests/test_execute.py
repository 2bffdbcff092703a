"""The kernel run's reader (execute.read_result) on a small nbgrader course, without a kernel: the
kernel's verdict on a visible check is whether that check raised, read from the executed notebook.
And the grader's kernel manager (execute.GraderKernelManager) with a plain kernel, no sandbox."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from coursekit.grading.kernel_course import kernel_course
from coursekit.grading.execute import read_result

AID, STUDENT = "toy", "student"


def cell(grade_id, source, points=None):
    meta = {"grade_id": grade_id, "schema_version": 3, "locked": points is not None,
            "solution": points is None, "grade": points is not None}
    if points is not None:
        meta["points"] = points
    return new_code_cell(source, id=grade_id, metadata={"nbgrader": meta})


def kernel_ran(tmp_path, source, outputs, auto_scores=None):
    """The working copy of a kernel run that recorded `auto_scores` (nbgrader's, per grade id) and
    left these `outputs` (per cell index) in the executed notebook; returns read_result's reading."""
    from nbgrader.api import Gradebook

    course = kernel_course(tmp_path / "course", AID, source)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_student(STUDENT)
        submission = gb.add_submission(AID, STUDENT)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = (auto_scores or {}).get(grade.name, grade.max_score)
        gb.db.commit()
    executed = nbformat.from_dict(source)
    for index, output in outputs.items():
        executed.cells[index].outputs = [output]
    target = course / "autograded" / STUDENT / AID / f"{AID}.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(executed, target)
    return read_result(course, AID, STUDENT, log="", timed_out=False, cell_timeout=10, notebook_timeout=60)


def test_kernel_verdict_is_whether_the_check_raised_not_its_stderr(tmp_path):
    """A check that wrote to stderr (a tqdm bar) passed; nbgrader's auto_score of 0 for it is not the verdict."""
    source = new_notebook(cells=[
        cell("answer", "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION"),
        cell("test_quiet", "assert answer() == 42", points=1),
        cell("test_progress_bar", "import sys\nsys.stderr.write('100%|##########|\\n')\nassert answer() == 42", points=1),
        cell("test_raises", "assert answer() == 41, 'expected 41'", points=1)])
    result = kernel_ran(tmp_path, source, {
        2: new_output("stream", name="stderr", text="100%|##########|\n"),
        3: new_output("error", ename="AssertionError", evalue="expected 41", traceback=[])},
        auto_scores={"test_progress_bar": 0, "test_raises": 0})    # nbgrader counts stderr as a failure
    assert result.status == "graded" and result.recorded, (result.status, result.reason)
    assert result.passed == {"test_quiet": True, "test_progress_bar": True, "test_raises": False}


def test_a_timed_out_cell_is_the_status(tmp_path):
    """A cell that ran past the cell limit makes the kernel run "timed out", whatever else it recorded."""
    source = new_notebook(cells=[cell("answer", "x = 1"), cell("test_x", "assert x == 1", points=1)])
    result = kernel_ran(tmp_path, source, {0: new_output("error", ename="CellTimeoutError", evalue="", traceback=[])})
    assert result.status == "timed out" and "10 s" in result.reason


def test_output_that_never_ends_after_the_reply_is_a_timeout_not_a_grader_error():
    from coursekit.grading.execute import failure

    log = "nbclient.exceptions.CellTimeoutError: A cell timed out while it was being executed, after 4 seconds.\n" \
          "The message was: Timeout waiting for IOPub output."
    status, reason = failure(log, cell_timeout=10)
    assert status == "timed out" and "output did not end" in reason


def test_a_kernel_that_never_started_is_tried_again_then_a_grader_error(tmp_path, monkeypatch):
    """A kernel that dies before its first reply ran no student code: the kernel run is tried once
    more, and if it fails again the submission is a grader error (to grade again), never "crashed"."""
    from coursekit.grading import execute, sandbox

    calls = []

    def never_starts(*args, **kwargs):
        calls.append(kwargs.get("student_id"))
        (tmp_path / "jupyter" / "kernel-1.stderr").write_text("Traceback ...\nOSError: no threads left\n")
        return {"success": False, "log": f"[ERROR] ... RuntimeError: {execute.NEVER_STARTED}\n", "error": ""}

    (tmp_path / "jupyter").mkdir()
    (tmp_path / "jupyter" / "kernel-0.stderr").write_text("a former submission's kernel\n")
    monkeypatch.setattr(execute.nbgrader_run, "app", never_starts)
    monkeypatch.setattr(execute.zygote, "kernelspec", lambda *args: tmp_path / "jupyter")
    monkeypatch.setattr(execute, "kill_sandbox", lambda config: None)
    monkeypatch.setenv("JUPYTER_PATH", "")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "")
    work = tmp_path / "work"
    work.mkdir()
    result = execute.run_kernel(work, AID, STUDENT, sandbox.SandboxConfig(str(tmp_path), 1), "socket", tmp_path / "slot",
                                cell_timeout=10, notebook_timeout=60)
    assert calls == [STUDENT, STUDENT]
    assert result.status == "grader error" and "did not start" in result.reason
    assert result.reason.endswith("it said: OSError: no threads left"), result.reason   # the launcher's file
    assert (work / "autograde-try1.log").exists()


def test_a_kernel_that_starts_on_the_second_try_is_graded(tmp_path, monkeypatch):
    """The second try's run is the result: graded, its verdicts read, the first try's log kept."""
    from nbgrader.api import Gradebook

    from coursekit.grading import execute, sandbox

    source = new_notebook(cells=[cell("answer", "x = 1"), cell("test_x", "assert x == 1", points=1)])
    work = kernel_course(tmp_path / "work", AID, source)
    calls = []

    def starts_second_time(*args, **kwargs):
        calls.append(kwargs.get("student_id"))
        if len(calls) == 1:
            return {"success": False, "log": f"[ERROR] ... RuntimeError: {execute.NEVER_STARTED}\n", "error": ""}
        with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
            gb.update_or_create_student(STUDENT)
            for notebook in gb.add_submission(AID, STUDENT).notebooks:
                for grade in notebook.grades:
                    grade.auto_score = grade.max_score
            gb.db.commit()
        target = work / "autograded" / STUDENT / AID / f"{AID}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(source, target)
        return {"success": True, "log": "[INFO] autograded\n", "error": ""}

    monkeypatch.setattr(execute.nbgrader_run, "app", starts_second_time)
    monkeypatch.setattr(execute.zygote, "kernelspec", lambda *args: tmp_path / "jupyter")
    monkeypatch.setattr(execute, "kill_sandbox", lambda config: None)
    monkeypatch.setenv("JUPYTER_PATH", "")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "")
    result = execute.run_kernel(work, AID, STUDENT, sandbox.SandboxConfig(str(tmp_path), 1), "socket", tmp_path / "slot",
                                cell_timeout=10, notebook_timeout=60)
    assert calls == [STUDENT, STUDENT]
    assert result.status == "graded" and result.recorded and result.passed == {"test_x": True}, result.reason
    assert (work / "autograde-try1.log").exists() and "autograded" in (work / "autograde.log").read_text()


def test_the_grader_kernel_is_ready_on_an_iopub_message_and_keeps_the_first_output():
    """The grader's kernel client is ready once `kernel_info` is answered and an IOPub message has
    come, not after upstream's further 0.2 s of IOPub silence; the first cell's output still comes,
    and the messages left from starting do not reach the notebook."""
    from queue import Empty

    from nbclient import NotebookClient

    from coursekit.grading.execute import GraderKernelManager, ReadyClient

    outcomes = []

    class Watched(ReadyClient):
        async def wait_for_ready(self, timeout=None):
            receive = self.iopub_channel.get_msg

            async def get_msg(*args, **kwargs):
                try:
                    msg = await receive(*args, **kwargs)
                except Empty:
                    outcomes.append("silence")
                    raise
                outcomes.append(msg["msg_type"])
                return msg

            self.iopub_channel.get_msg = get_msg
            try:
                await super().wait_for_ready(timeout)
            finally:
                del self.iopub_channel.get_msg

    assert GraderKernelManager().client_factory is ReadyClient
    nb = new_notebook(cells=[new_code_cell("print('first')"), new_code_cell("print(2 + 2)")])
    km = GraderKernelManager(kernel_name="python3", client_factory=Watched)
    NotebookClient(nb, km=km, timeout=60).execute()
    assert outcomes and outcomes[-1] != "silence", outcomes
    assert [[o.get("text") for o in c.outputs] for c in nb.cells] == [["first\n"], ["4\n"]]
