"""Sandbox uids are leased, one per grading worker on the whole machine (sandbox.lease_uid): two
batches graded at once (two assignments, two courses on one server, make test's parallel workers)
never share one. A shared uid shares one process limit (a fork bomb in one batch kept the other's
kernels from starting: "grader error" in CI) and, without namespaces, the kill of all its processes."""

import os
import resource
import subprocess
import sys
import textwrap

import pytest

from coursekit import REPO
from coursekit import notebooks as nbs
from coursekit.config import load_course
from coursekit.grading import sandbox
from coursekit.grading.batch import grade_batch
from tests.submissions import hostile

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are leased by a grader running as root")


@ROOT_ONLY
def test_leases_held_at_once_are_different_uids():
    first, second = sandbox.lease_uid(), sandbox.lease_uid()
    try:
        assert first.uid != second.uid
        assert sandbox.SANDBOX_UID <= min(first.uid, second.uid)
        assert max(first.uid, second.uid) < sandbox.SANDBOX_UID + sandbox.SANDBOX_UIDS
        first.release()
        again = sandbox.lease_uid()
        assert again.uid != second.uid
        again.release()
    finally:
        first.release()
        second.release()


@ROOT_ONLY
def test_a_lease_lasts_as_long_as_the_process_that_holds_it():
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from coursekit.grading import sandbox
        print(sandbox.lease_uid().uid, flush=True)
        sys.stdin.read()""")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        held = int(holder.stdout.readline())
        mine = sandbox.lease_uid()
        assert mine.uid != held
        mine.release()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    freed = [sandbox.lease_uid() for _ in range(3)]     # its uid is free again (others may hold lower ones)
    try:
        assert held in {lease.uid for lease in freed} or all(lease.uid < held for lease in freed)
    finally:
        for lease in freed:
            lease.release()


def test_the_lease_folder_is_one_no_one_else_may_write(tmp_path, monkeypatch):
    """A lease folder other users can write (a sandbox could take every lease) is passed over; with
    none usable the grader says what to do."""
    open_to_all, private = tmp_path / "open", tmp_path / "private"
    (open_to_all / "coursekit-sandbox-uids").mkdir(parents=True)
    (open_to_all / "coursekit-sandbox-uids").chmod(0o777)
    private.mkdir()
    monkeypatch.setattr(sandbox, "LEASE_PARENTS", (str(open_to_all), str(private)))
    if os.geteuid() == 0:
        assert sandbox.lease_folder() == private / "coursekit-sandbox-uids"
        assert (private / "coursekit-sandbox-uids").stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(sandbox, "LEASE_PARENTS", (str(open_to_all),))
    with pytest.raises(sandbox.NoSandboxUid, match="owned by root, mode 700"):
        sandbox.lease_folder()


def fill_process_limit(uid: int) -> int:
    """Sleepers of `uid` until its process limit (the sandbox's) refuses one, as a fork bomb in
    another grader's batch leaves it; returns how many."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        count = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            limit = sandbox.SandboxConfig(workdir="/", threads=1).max_processes
            resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
            while True:
                os.posix_spawn("/bin/sleep", ["sleep", "600"], {})
                count += 1
        except BlockingIOError:
            pass
        finally:
            os.write(write, str(count).encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return int(pipe.read() or 0)


@pytest.mark.slow
@pytest.mark.skipif(sandbox.capabilities().drop_uid is False, reason="sandbox uids are dropped to as root")
def test_another_graders_fork_bomb_does_not_stop_this_batch(tmp_path, monkeypatch):
    """Another grader holds a uid whose process limit its student's fork bomb has used up: this
    batch's sandboxes run as another uid, the honest submission is graded, and the other grader's
    processes are left alone. Made to share that uid (as every batch's first worker did before the
    leases), its kernel cannot start: a grader error whose reason says what the kernel said."""
    aid, stop = "resnet_blocks", "test_residual_block_behaviour"
    assignment = load_course().assignments[aid]
    source = nbs.prefix(nbs.read(assignment.notebook("source")), stop)
    release = nbs.prefix(nbs.read(assignment.notebook("release")), stop)
    (tmp_path / "submissions").mkdir()
    nbs.write(nbs.make_submission(release, nbs.reference_answers(source)), tmp_path / "submissions" / "honest.ipynb")
    nbs.write(source, tmp_path / "source.ipynb")
    other = sandbox.lease_uid()
    try:
        assert fill_process_limit(other.uid) > 100
        report = grade_batch(aid, tmp_path / "submissions", out=tmp_path / "out", work=tmp_path / "work",
                             source=tmp_path / "source.ipynb", limits=hostile.LIMITS, jobs=1)
        result = report.results["honest"]
        assert result.status == "graded", (result.status, result.reason)
        assert sandbox.user_tasks(other.uid) > 100, "the batch killed another grader's processes"

        monkeypatch.setattr(sandbox, "lease_uid", lambda: sandbox.UidLease(other.uid, os.dup(other.fd)))
        report = grade_batch(aid, tmp_path / "submissions", out=tmp_path / "out", work=tmp_path / "work",
                             source=tmp_path / "source.ipynb", limits=hostile.LIMITS, jobs=1)
        result = report.results["honest"]
        assert result.status == "grader error" and "did not start" in result.reason, (result.status, result.reason)
        assert "it said: " in result.reason and "Resource temporarily unavailable" in result.reason, result.reason
    finally:
        sandbox.kill_uid(other.uid)
        other.release()
