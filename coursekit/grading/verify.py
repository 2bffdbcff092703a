"""The verification run, from the grader's side: its job, its sandboxed process, its verdicts.

Points come from here, never from the student's kernel: `verify()` starts the runner
(`runner.py`) from the zygote in the same sandbox as the kernel, feeds it the plan (`plan.py`)
and an HMAC key on stdin, and reads its authenticated verdicts with per-cell and whole-run time
limits. A verdict stream that breaks its protocol (a bad MAC, a line out of sequence, a verdict
for a test not due) is proof of tampering; `decide()` then compares what the kernel reported with
what the verification run found.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import select
import signal
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .plan import ARTEFACT_FOLDER, PlannedCell
from .results import Status
from .sandbox import SandboxConfig

STUDENT_MESSAGE_CAP = 300    # a verdict message as a student sees it (the runner sends at most runner.MESSAGE_CAP)
INTERRUPT_GRACE = 5.0       # seconds a cell has to stop after its interrupt before the run is killed


class Ended(StrEnum):
    """How a verification run ended (its time-out and crash are those statuses)."""

    DONE = "done"
    TIMED_OUT = Status.TIMED_OUT.value
    CRASHED = Status.CRASHED.value
    TAMPERED = "tampered"


@dataclass
class TestVerdict:
    id: str
    points: float
    passed: bool
    visible_passed: bool          # the visible checks passed (what the kernel could see)
    message: str                  # for the student: the test's own message, scrubbed and capped
    seconds: float = 0.0


@dataclass
class Verification:
    verdicts: dict[str, TestVerdict] = field(default_factory=dict)
    ended: Ended = Ended.DONE
    where: str = ""               # the cell it was in when it ended early
    interrupted: list[str] = field(default_factory=list)  # cells stopped at the per-cell limit
    problems: list[str] = field(default_factory=list)   # integrity reports, protocol violations
    cells: dict[str, str] = field(default_factory=dict)  # other cells: ok / error: ... / missing: ...
    seconds: float = 0.0
    log: str = ""


@dataclass(frozen=True)
class Limits:
    cell_timeout: float
    notebook_timeout: float


def scrub(text: str, secrets_: set[str]) -> str:
    """A message fit for a student: no line of a hidden test or solution in it, at most
    STUDENT_MESSAGE_CAP characters."""
    for line in sorted(secrets_, key=len, reverse=True):
        if line in text:
            text = text.replace(line, "[hidden]")
    text = " ".join(text.split())
    return text if len(text) <= STUDENT_MESSAGE_CAP else text[: STUDENT_MESSAGE_CAP - 1] + "…"


def verify(zygote, config: SandboxConfig, env: dict, planned: list[PlannedCell], preload: list[str],
           limits: Limits, secret_text: set[str]) -> Verification:
    """Run the plan in a sandbox from `zygote`; its folder `config.workdir` holds the artefacts."""
    key = secrets.token_bytes(32)
    job = {"key": key.hex(), "result_fd": 3, "preload": preload, "artefact_dir": ARTEFACT_FOLDER,
           "cells": [c.to_json() for c in planned]}
    job_read, job_write = os.pipe()
    result_read, result_write = os.pipe()
    log_path = Path(config.workdir) / "verification.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if config.uid is not None:
        os.fchown(log_fd, config.uid, config.uid)
    start = time.monotonic()
    try:
        conn, pid = zygote.spawn("runner", config, [job_read, log_fd, log_fd, result_write], env)
    finally:
        for fd in (job_read, result_write, log_fd):
            os.close(fd)
    try:
        with os.fdopen(job_write, "wb") as pipe:
            pipe.write(json.dumps(job).encode())
    except BrokenPipeError:
        pass
    result = Verification()
    try:
        _read(result_read, key, planned, limits, result, start, secret_text, pid)
    finally:
        os.close(result_read)
        conn.close()                      # kills the sandbox if it is still running
    result.seconds = round(time.monotonic() - start, 2)
    try:
        result.log = log_path.read_bytes()[-4000:].decode(errors="replace")
    except OSError:
        pass
    return result


def _read(fd: int, key: bytes, planned: list[PlannedCell], limits: Limits, result: Verification,
          start: float, secret_text: set[str], pid: int) -> None:
    tests = {c.id: c for c in planned if c.kind == "test"}
    expected_seq, buffer, current, cell_started, done = 1, b"", "", start, False
    while True:
        now = time.monotonic()
        grace = INTERRUPT_GRACE if current in result.interrupted else 0.0
        deadline = min(start + limits.notebook_timeout, cell_started + limits.cell_timeout + grace)
        if now >= deadline:
            if now < start + limits.notebook_timeout and current and current not in result.interrupted:
                result.interrupted.append(current)       # like nbgrader: interrupt, then go on
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
                continue
            result.ended, result.where = Ended.TIMED_OUT, current
            return
        ready, _, _ = select.select([fd], [], [], deadline - now)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if not done and result.ended == Ended.DONE:
                result.ended, result.where = Ended.CRASHED, current
            return
        buffer += chunk
        if len(buffer) > 8 * 2**20:
            result.ended, result.where = Ended.TAMPERED, current
            result.problems.append("the verification run wrote more than its results")
            return
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            fields = _authentic(raw, key, expected_seq)
            if fields is None:
                result.ended, result.where = Ended.TAMPERED, current
                result.problems.append("the verification run's results were forged or reordered")
                return
            expected_seq += 1
            kind = fields[0]
            if kind == "start":
                current, cell_started = fields[1], time.monotonic()
            elif kind == "test":
                _, cid, verdict, line, name, text, seconds = fields
                cell = tests.get(cid)
                if cell is None or cid in result.verdicts or cid != current:
                    result.ended, result.where = Ended.TAMPERED, current
                    result.problems.append(f"a verdict for {cid} that was not due")
                    return
                passed = verdict == "pass"
                visible = passed or int(line) in cell.hidden_lines
                message = "" if passed else scrub(f"{name}: {text}" if text else name, secret_text)
                result.verdicts[cid] = TestVerdict(cid, cell.points, passed, visible, message, float(seconds))
            elif kind == "cell":
                result.cells[fields[1]] = fields[2]
            elif kind == "integrity":
                result.problems.append(f"{fields[1]}: {fields[2]}")
            elif kind == "fault":
                result.ended, result.where = Ended.CRASHED, current
                result.problems.append(f"the verification run failed: {fields[1]} {fields[2]}"[:300])
            elif kind == "done":
                done = True
                missing = [t for t in tests if t not in result.verdicts]
                if missing:
                    result.ended = Ended.TAMPERED
                    result.problems.append(f"no verdict for {', '.join(missing)}")
                return


def _authentic(raw: bytes, key: bytes, expected_seq: int) -> list | None:
    """The fields of one result line, or None if its MAC or sequence number is wrong."""
    body, _, mac = raw.rpartition(b"\t")
    want = hmac.new(key, body, "sha256").hexdigest().encode()
    if not hmac.compare_digest(want, mac):
        return None
    seq, *quoted = body.decode("utf-8", "backslashreplace").split("\t")
    if seq != str(expected_seq) or not quoted:
        return None
    try:
        return [unquote(q) for q in quoted]
    except ValueError:
        return None


def unquote(quoted: str) -> str:
    """The string whose `str.__repr__` is `quoted` (how the runner writes each field). Decoded
    without the compiler: `ast.literal_eval` shares per-interpreter AST state that a finalizer or
    another thread compiling at the same moment corrupts (SystemError: AST constructor recursion
    depth mismatch, seen in a grading worker)."""
    if len(quoted) < 2 or quoted[0] not in "'\"" or quoted[-1] != quoted[0]:
        raise ValueError(f"not a quoted string: {quoted[:40]!r}")
    inner = quoted[1:-1]
    text = inner.encode("latin-1", "backslashreplace").decode("unicode_escape")
    if repr(text) != quoted:
        raise ValueError(f"not a string's repr: {quoted[:40]!r}")
    return text


# ---------------------------------------------------------------- kernel vs verification
@dataclass
class Decision:
    status: Status                            # graded | needs review | timed out | crashed
    cells: dict[str, float]                   # test cell -> points (from the verification run)
    reasons: list[str]
    review: list[str]                         # why it needs review ([] otherwise)


def decide(kernel_status: Status, kernel_passed: dict[str, bool], verification: Verification,
           flags: list[str]) -> Decision:
    """Points from the verification run; needs review where the kernel and the verification run
    disagree on a check both ran, where the verification run was tampered with or refused
    something, or where the static review found code that reaches into the interpreter."""
    v = verification
    cells = {cid: (t.points if t.passed else 0.0) for cid, t in v.verdicts.items()}
    review = [f"static review: {f}" for f in flags]
    review += [f"verification: {p}" for p in v.problems]
    for cid, t in v.verdicts.items():
        if cid in kernel_passed and kernel_passed[cid] != t.visible_passed:
            said = "passed" if kernel_passed[cid] else "failed"
            found = "passed" if t.visible_passed else "failed"
            review.append(f"{cid}: the visible checks {said} in your kernel but {found} in the verification run")
    kernel_finished = kernel_status == Status.GRADED
    if v.ended in (Ended.TIMED_OUT, Ended.CRASHED) and kernel_finished:
        review.append(f"the verification run {v.ended} in {v.where or 'its start-up'} "
                      f"where your kernel went on")
    elif v.interrupted and kernel_finished:
        review.append(f"{', '.join(v.interrupted)} ran past the time limit in the verification run "
                      f"but not in your kernel")
    reasons = []
    if review:
        status = Status.NEEDS_REVIEW
    elif kernel_status in (Status.TIMED_OUT, Status.CRASHED):
        status = Status(kernel_status)
    elif v.ended in (Ended.TIMED_OUT, Ended.CRASHED) or v.interrupted:
        status = Status(v.ended) if v.ended != Ended.DONE else Status.TIMED_OUT
        reasons.append(f"the verification run {status} in {v.where or ', '.join(v.interrupted)}")
    else:
        status = Status.GRADED
    return Decision(status, cells, reasons, review)
