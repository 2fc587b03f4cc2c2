"""How many CPUs this process may keep busy, which is not how many the machine has.

``os.cpu_count()`` counts the host's cores: a container limited to 4 CPUs on a 64-core host, or
a job that a scheduler pinned to some cores, would start 64 workers that then share 4 CPUs' worth
of time. Worker and thread counts come from ``usable_cpu_count()`` instead.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpu_count(cgroup_root: Path = CGROUP_ROOT, membership: str | None = None) -> int:
    """The CPUs this process may use: those its affinity allows (taskset, a cpuset), capped by
    its cgroup's CPU quota (a container's CPU limit) rounded up; at least 1.

    ``cgroup_root`` is where the cgroup file systems are mounted and ``membership`` the text of
    ``/proc/self/cgroup`` (read when None); tests give their own.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, membership)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(
    cgroup_root: Path = CGROUP_ROOT, membership: str | None = None
) -> float | None:
    """CPUs' worth of time per period that the cgroup quota grants (None: no quota).

    cgroup v2's ``cpu.max`` ("max 100000" or "200000 100000") and v1's ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` (-1: none), read in this process's cgroup and each folder above it:
    the tightest limit holds.
    """
    if membership is None:
        try:
            membership = Path("/proc/self/cgroup").read_text(encoding="utf-8")
        except OSError:
            membership = ""
    quotas = []
    for folder in _cgroup_folders(cgroup_root, membership):
        quota = _quota_in(folder)
        if quota is not None:
            quotas.append(quota)
    return min(quotas, default=None)


def _cgroup_folders(cgroup_root: Path, membership: str) -> list[Path]:
    """This process's cgroup folders that may hold a CPU quota, innermost first, then the mount
    folders themselves (inside a container, its own cgroup is the root)."""
    own = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:  # v2's single hierarchy
            mounts = [cgroup_root]
        elif "cpu" in controllers.split(","):
            mounts = [cgroup_root / "cpu", cgroup_root / "cpu,cpuacct", cgroup_root / controllers]
        else:
            continue
        relative = Path(path.strip().lstrip("/"))
        for mount in mounts:
            own.extend(mount / part for part in (relative, *relative.parents))
    mounts = [cgroup_root, cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"]
    return list(dict.fromkeys([*own, *mounts]))


def _quota_in(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").is_file():
            quota, period = (folder / "cpu.max").read_text(encoding="utf-8").split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():
            quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
            period = int((folder / "cpu.cfs_period_us").read_text(encoding="utf-8"))
            return None if quota < 0 else quota / period
    except (OSError, ValueError):  # unreadable or an unknown format: no limit we can read
        return None
    return None
