"""The CPUs a process may use: its affinity, capped by a container's cgroup CPU quota."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_pipeline.cpus import cgroup_cpu_quota, usable_cpu_count

IN_ITS_OWN_NAMESPACE = "0::/\n"  # /proc/self/cgroup inside a container: its cgroup is the root


def cgroup_v2(root: Path, cpu_max: str, path: str = "") -> Path:
    folder = root / path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int, path: str = "") -> Path:
    folder = root / "cpu,cpuacct" / path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_a_process_pinned_to_one_cpu_uses_one_and_starts_one_worker():
    pinned = (
        "import os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from llm_pipeline.cpus import usable_cpu_count\n"
        "from llm_pipeline.hygiene.parallel import worker_count\n"
        "print(usable_cpu_count(), worker_count('auto'))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", pinned], capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["1", "1"]
    # And unpinned, this process counts every CPU its affinity allows.
    assert usable_cpu_count() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("max 100000", None), ("200000 100000", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5)],
)
def test_the_cgroup_v2_quota_is_read_from_cpu_max(tmp_path, cpu_max, quota):
    assert cgroup_cpu_quota(cgroup_v2(tmp_path, cpu_max), IN_ITS_OWN_NAMESPACE) == quota


@pytest.mark.parametrize(
    ("quota_us", "period_us", "quota"),
    [(-1, 100000, None), (400000, 100000, 4.0), (25000, 50000, 0.5)],
)
def test_the_cgroup_v1_quota_is_read_from_cfs_quota_and_period(
    tmp_path, quota_us, period_us, quota
):
    root = cgroup_v1(tmp_path, quota_us, period_us)
    assert cgroup_cpu_quota(root, "2:cpu,cpuacct:/\n") == quota


def test_a_fractional_quota_rounds_up_and_never_below_one(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    half = cgroup_v2(tmp_path / "half", "50000 100000")
    assert usable_cpu_count(half, IN_ITS_OWN_NAMESPACE) == 1
    one_and_a_half = cgroup_v2(tmp_path / "one_and_a_half", "150000 100000")
    assert usable_cpu_count(one_and_a_half, IN_ITS_OWN_NAMESPACE) == min(2, affinity)
    unlimited = cgroup_v2(tmp_path / "unlimited", "max 100000")
    assert usable_cpu_count(unlimited, IN_ITS_OWN_NAMESPACE) == affinity
    assert usable_cpu_count(tmp_path / "no_cgroup_files", IN_ITS_OWN_NAMESPACE) == affinity


def test_the_tightest_quota_on_the_way_up_from_the_own_cgroup_holds(tmp_path):
    """A pod's limit sits on the pod's folder, a container's on its own one below it."""
    cgroup_v2(tmp_path, "400000 100000", "kubepods/pod1")
    cgroup_v2(tmp_path, "max 100000", "kubepods/pod1/container1")
    assert cgroup_cpu_quota(tmp_path, "0::/kubepods/pod1/container1\n") == 4.0
    cgroup_v2(tmp_path, "50000 100000", "kubepods/pod1/container1")
    assert cgroup_cpu_quota(tmp_path, "0::/kubepods/pod1/container1\n") == 0.5
    v1 = cgroup_v1(tmp_path / "v1", 300000, 100000, "docker/abc")
    assert cgroup_cpu_quota(v1, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n") == 3.0


def test_an_unreadable_quota_file_is_no_limit(tmp_path):
    assert cgroup_cpu_quota(cgroup_v2(tmp_path, "garbage"), IN_ITS_OWN_NAMESPACE) is None
