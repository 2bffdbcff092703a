"""The cores a grading batch may use: $COURSEKIT_CPUS, else this process's CPU affinity capped by
its cgroup's CPU quota."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cpu_budget(cgroup_root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores a batch may use: $COURSEKIT_CPUS where set (the test suite gives each pytest worker its
    share), else the CPUs this process may run on, capped by its cgroup's CPU quota rounded up (in a
    container the affinity counts the host's cores). The sandboxed kernels get this many math threads
    in all, so that a batch beside other torch processes does not run more threads than it has cores."""
    if os.environ.get("COURSEKIT_CPUS"):
        return max(1, int(os.environ["COURSEKIT_CPUS"]))
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root, self_cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"),
                     self_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs this process's cgroup may use (quota / period, the smallest over it and its ancestors),
    or None where no quota is set: cgroup v2 `cpu.max` ("QUOTA PERIOD", "max PERIOD"), cgroup v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none) under `root`/cpu or `root`/cpu,cpuacct."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if controllers == "":                                           # v2 (unified)
            for mount in (root, root / "unified"):
                if (mount / "cgroup.controllers").exists():
                    quotas += [_v2_quota(d) for d in _ancestors(mount, relative)]
                    break
        elif "cpu" in controllers.split(","):                           # v1
            for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / name).is_dir():
                    quotas += [_v1_quota(d) for d in _ancestors(root / name, relative)]
                    break
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _ancestors(mount: Path, relative: str) -> list[Path]:
    """The cgroup's folder and each folder above it up to the mount, those that exist here (in a
    container the host's path of its cgroup may not: then the mount itself is its cgroup)."""
    folders = [mount / relative] if relative else []
    folders += [mount / p for p in Path(relative).parents if str(p) != "."] + [mount]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" or int(period) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None

