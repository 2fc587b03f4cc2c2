"""What a cluster scheduler tells a process about its place in a multi-machine job.

Slurm, Kubeflow Trainer v2 and SkyPilot each start one process per machine and describe the
job in environment variables: how many machines, which one this is, where node 0 is, how many
GPUs each has, the job's id. ``read_cluster`` reads them; the launcher takes them as the
defaults of ``launch.nnodes``, ``node_rank``, ``rdzv_endpoint`` and ``nproc_per_node`` (an
explicit parameter wins). Nothing here asks the scheduler (no ``scontrol``): only the
environment is read.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# The port of the rendezvous when the scheduler names the host only (torch's MASTER_PORT default).
DEFAULT_PORT = 29500


@dataclass(frozen=True)
class ClusterJob:
    """The job as a scheduler describes it; None where it says nothing."""

    scheduler: Literal["slurm", "kubeflow", "skypilot"]
    job_id: str | None
    nnodes: int | None
    node_rank: int | None
    rdzv_endpoint: str | None
    nproc_per_node: int | Literal["auto"] | None


def read_cluster(environ: Mapping[str, str]) -> ClusterJob | None:
    """The job the environment describes, or None outside a recognised scheduler.

    SkyPilot is read before Kubeflow and Kubeflow before Slurm: a SkyPilot task or a Kubeflow
    pod may itself run inside a Slurm allocation, and the innermost layer knows the job.
    """
    for reader in (_skypilot, _kubeflow, _slurm):
        job = reader(environ)
        if job is not None:
            return job
    return None


def _slurm(environ: Mapping[str, str]) -> ClusterJob | None:
    if "SLURM_JOB_ID" not in environ:
        return None
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    head = parse_hostlist(nodelist)[0] if nodelist else None
    return ClusterJob(
        scheduler="slurm",
        job_id=environ["SLURM_JOB_ID"],
        # A step's node count (srun) before the allocation's.
        nnodes=_whole(environ, "SLURM_NNODES") or _whole(environ, "SLURM_JOB_NUM_NODES"),
        node_rank=_whole(environ, "SLURM_NODEID"),
        rdzv_endpoint=None if head is None else f"{head}:{_port(environ, 'MASTER_PORT')}",
        nproc_per_node=_whole(environ, "SLURM_GPUS_ON_NODE") or None,
    )


def _kubeflow(environ: Mapping[str, str]) -> ClusterJob | None:
    """Kubeflow Trainer v2's torch runtime: the ``PET_*`` variables torchrun itself reads."""
    names = ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_NPROC_PER_NODE")
    if not any(name in environ for name in names):
        return None
    host = environ.get("PET_MASTER_ADDR")
    nproc = environ.get("PET_NPROC_PER_NODE", "").strip()
    return ClusterJob(
        scheduler="kubeflow",
        job_id=None,
        nnodes=_whole(environ, "PET_NNODES"),
        node_rank=_whole(environ, "PET_NODE_RANK"),
        rdzv_endpoint=None if not host else f"{host}:{_port(environ, 'PET_MASTER_PORT')}",
        # torchrun also knows "auto", "gpu" and "cpu"; one process per GPU is this project's auto.
        nproc_per_node=int(nproc) if nproc.isdigit() else ("auto" if nproc else None),
    )


def _skypilot(environ: Mapping[str, str]) -> ClusterJob | None:
    if "SKYPILOT_NODE_RANK" not in environ and "SKYPILOT_NUM_NODES" not in environ:
        return None
    ips = [line.strip() for line in environ.get("SKYPILOT_NODE_IPS", "").splitlines()]
    head = next((ip for ip in ips if ip), None)
    return ClusterJob(
        scheduler="skypilot",
        job_id=environ.get("SKYPILOT_TASK_ID") or None,
        nnodes=_whole(environ, "SKYPILOT_NUM_NODES"),
        node_rank=_whole(environ, "SKYPILOT_NODE_RANK"),
        rdzv_endpoint=None if head is None else f"{head}:{_port(environ, 'MASTER_PORT')}",
        nproc_per_node=_whole(environ, "SKYPILOT_NUM_GPUS_PER_NODE") or None,
    )


def _whole(environ: Mapping[str, str], name: str) -> int | None:
    """The whole number in ``name`` (None when unset), else a ValueError naming the variable."""
    value = environ.get(name, "").strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    raise ValueError(f"{name}={value!r} is not a whole number; cannot read the cluster's job.")


def _port(environ: Mapping[str, str], name: str) -> int:
    return _whole(environ, name) or DEFAULT_PORT


_HOST_ITEM = re.compile(r"([^\[]*)\[([^\]]*)\](.*)")


def parse_hostlist(hostlist: str) -> list[str]:
    """The host names of a Slurm host list, in order: ``gpu[01-04,07],login1`` is gpu01, gpu02,
    gpu03, gpu04, gpu07, login1 (ranges keep their zero padding; several bracket groups in one
    name expand as a product, ``r[1-2]n[1-2]`` being r1n1, r1n2, r2n1, r2n2)."""
    hosts: list[str] = []
    for item in _top_level_items(hostlist):
        hosts.extend(_expand(item))
    if not hosts:
        raise ValueError(f"The Slurm host list {hostlist!r} names no host.")
    return hosts


def _top_level_items(hostlist: str) -> list[str]:
    """``hostlist`` split at the commas outside brackets."""
    items, current, depth = [], "", 0
    for char in hostlist.strip():
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"The Slurm host list {hostlist!r} has unbalanced brackets.")
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def _expand(item: str) -> list[str]:
    match = _HOST_ITEM.fullmatch(item)
    if match is None:
        return [item]
    prefix, ranges, rest = match.groups()
    return [
        prefix + number + tail
        for number, tail in itertools.product(_numbers(ranges, item), _expand(rest))
    ]


def _numbers(ranges: str, item: str) -> list[str]:
    """``01-03,07`` as 01, 02, 03, 07."""
    numbers = []
    for part in ranges.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"Cannot read the range {part!r} of Slurm host list item {item!r}.")
        width = len(low)
        numbers.extend(str(n).zfill(width) for n in range(int(low), int(high or low) + 1))
    return numbers
