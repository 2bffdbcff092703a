"""Math threads from the CPUs a batch really has: the affinity, capped by the cgroup's CPU quota
(a container's affinity counts the host's cores), on fake cgroup trees (cgroup v1 and v2)."""

import os

import pytest

from coursekit.grading.cpus import cgroup_cpu_quota, cpu_budget


@pytest.fixture
def host(tmp_path, monkeypatch):
    """An 8-core host, no $COURSEKIT_CPUS; returns (cgroup root, the process's /proc/self/cgroup)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("COURSEKIT_CPUS", raising=False)
    return tmp_path / "sys_fs_cgroup", tmp_path / "proc_self_cgroup"


def v2(root, self_cgroup, path, limits):
    """A cgroup v2 tree: {folder under root: cpu.max}; the process in `path`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for folder, cpu_max in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(cpu_max + "\n")
    self_cgroup.write_text(f"0::{path}\n")


def v1(root, self_cgroup, mount, path, quota, period="100000"):
    """A cgroup v1 cpu hierarchy mounted at root/mount; the process in `path`."""
    folder = root / mount / path.lstrip("/")
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    self_cgroup.write_text(f"12:memory:{path}\n4:{mount}:{path}\n1:name=systemd:/init.scope\n0::/\n")


def test_v2_quota_caps_the_affinity(host):
    root, self_cgroup = host
    v2(root, self_cgroup, "/system.slice/grader.service", {"system.slice/grader.service": "150000 100000"})
    assert cgroup_cpu_quota(root, self_cgroup) == 1.5
    assert cpu_budget(root, self_cgroup) == 2


def test_v2_container_with_its_own_cgroup_namespace(host):
    """Docker (cgroupns private): the process sees itself at "/", its limit at the mount's root."""
    root, self_cgroup = host
    v2(root, self_cgroup, "/", {".": "400000 100000"})
    assert cpu_budget(root, self_cgroup) == 4


def test_v2_host_path_not_mounted_here_reads_the_mount(host):
    """Without a cgroup namespace the path is the host's (/docker/<id>); the mount is the container's."""
    root, self_cgroup = host
    v2(root, self_cgroup, "/docker/0123abcd", {".": "200000 100000"})
    assert cpu_budget(root, self_cgroup) == 2


def test_v2_the_strictest_ancestor_wins(host):
    root, self_cgroup = host
    v2(root, self_cgroup, "/a/b", {"a": "300000 100000", "a/b": "max 100000"})
    assert cpu_budget(root, self_cgroup) == 3


def test_v2_no_quota_keeps_the_affinity(host):
    root, self_cgroup = host
    v2(root, self_cgroup, "/user.slice", {"user.slice": "max 100000"})
    assert cgroup_cpu_quota(root, self_cgroup) is None
    assert cpu_budget(root, self_cgroup) == 8


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_v1_quota_caps_the_affinity(host, mount):
    root, self_cgroup = host
    v1(root, self_cgroup, mount, "/docker/0123abcd", 200000)
    assert cpu_budget(root, self_cgroup) == 2


def test_v1_no_quota_keeps_the_affinity(host):
    root, self_cgroup = host
    v1(root, self_cgroup, "cpu,cpuacct", "/", -1)
    assert cgroup_cpu_quota(root, self_cgroup) is None
    assert cpu_budget(root, self_cgroup) == 8


def test_a_fractional_quota_is_one_cpu(host):
    """Gradescope's smallest container: 0.5 CPU."""
    root, self_cgroup = host
    v1(root, self_cgroup, "cpu", "/", 50000)
    assert cgroup_cpu_quota(root, self_cgroup) == 0.5
    assert cpu_budget(root, self_cgroup) == 1
    v2(root / "v2", self_cgroup, "/", {".": "50000 100000"})
    assert cpu_budget(root / "v2", self_cgroup) == 1


def test_a_quota_above_the_affinity_changes_nothing(host):
    root, self_cgroup = host
    v2(root, self_cgroup, "/", {".": "1600000 100000"})
    assert cpu_budget(root, self_cgroup) == 8


def test_no_cgroup_files_keeps_the_affinity(host):
    root, self_cgroup = host
    assert cpu_budget(root, self_cgroup) == 8                       # neither file exists
    self_cgroup.write_text("0::/\n")
    assert cpu_budget(root, self_cgroup) == 8                       # no cgroup mount here


def test_coursekit_cpus_overrides_everything(host, monkeypatch):
    root, self_cgroup = host
    v2(root, self_cgroup, "/", {".": "50000 100000"})
    monkeypatch.setenv("COURSEKIT_CPUS", "3")
    assert cpu_budget(root, self_cgroup) == 3
