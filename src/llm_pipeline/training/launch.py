"""Start a training entrypoint under torchrun, the one place the project does so.

The launcher runs torchrun (``python -m llm_pipeline.training.torchrun``: ``torch.distributed.run``
ended without the interpreter's teardown) as a child process with an argument list (never a
shell string), hands the workers the MLflow run it is given so rank 0 logs into it, streams
their output into the log and, when they fail, raises an error with the failing rank, its exit
code and its traceback, read from torch's JSON error files (the entrypoints' ``main`` is
decorated with torch's ``record``, which writes them), and where that rank's own log is.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_pipeline.cpus import usable_cpu_count
from llm_pipeline.training.cluster import ClusterJob, read_cluster
from llm_pipeline.training.jobs import (
    CPU_BF16_VARIABLE,
    DDP_TIMEOUT_VARIABLE,
    ERROR_FILE_VARIABLE,
    RUN_ID_VARIABLE,
    WORKER_ENDED,
    WORKER_SIGTERM,
    WORKER_STARTED,
)
from llm_pipeline.training.manifests import DIGEST_VARIABLE, DigestMode

logger = logging.getLogger(__name__)

# What the launcher tells the workers beyond the job file (read in training/tracking.py).
LAUNCHED_AT_VARIABLE = "LLM_PIPELINE_LAUNCHED_AT"
PROGRESS_SECONDS_VARIABLE = "LLM_PIPELINE_PROGRESS_SECONDS"
SYSTEM_METRICS_SECONDS_VARIABLE = "LLM_PIPELINE_SYSTEM_METRICS_SECONDS"
_TAIL_LINES = 40
# torchrun copies the first failure a worker recorded here, in the launch's log folder, with the
# worker's exit code; each worker's own file is error.json in its local rank's log folder.
_ERROR_FILE = "error.json"


@dataclass(frozen=True)
class TrackingRun:
    """The MLflow run a job's rank 0 logs into: the caller's choice, passed to ``launch``."""

    tracking_uri: str
    run_id: str


class LaunchConfig(BaseModel):
    """How many processes on how many machines, and how they meet.

    ``nproc_per_node``, ``nnodes``, ``node_rank`` and ``rdzv_endpoint`` unset (null) take the
    cluster scheduler's values (``training/cluster.py``), else one process on one machine.
    ``rdzv_id`` is the prefix of each launch's rendezvous id (``rendezvous_id``).
    ``checkpoint_root`` is where a stage keeps its checkpoints so that a killed run resumes
    (unset: a temporary folder, no resume); ``keep_checkpoints`` keeps them after success.
    Rank 0 logs a progress line every ``progress_seconds`` (0: only at the end) and samples
    system metrics into the MLflow run every ``system_metrics_seconds`` (0: none).
    """

    model_config = ConfigDict(extra="forbid")

    # Every value is in conf/base/parameters_launch.yml.
    nproc_per_node: int | Literal["auto"] | None
    nnodes: int | None = Field(ge=1)
    node_rank: int | None = Field(ge=0)
    rdzv_endpoint: str | None
    rdzv_id: str = Field(min_length=1)
    # Seconds for every machine to join a launch's rendezvous (c10d's join_timeout).
    rdzv_timeout: int = Field(gt=0)
    # Seconds a collective (all-reduce, barrier) may wait: the Trainer's ddp_timeout.
    ddp_timeout: int = Field(gt=0)
    # Seconds a machine waits for the model that rank 0 saved to appear, complete, on the
    # shared checkpoint_root after a launch on several machines.
    handover_timeout: float = Field(gt=0)
    # Extra environment variables of the workers (NCCL_SOCKET_IFNAME, NCCL_DEBUG, ...).
    env: dict[str, str]
    max_restarts: int = Field(ge=0)
    checkpoint_root: Path | None
    keep_checkpoints: bool
    # Where a job writes its model before the catalog moves it into place: on the models
    # folder's file system the move is a rename (null: a temporary folder, then a copy).
    staging_root: Path | None
    # How checkpoints, handed-over models and fingerprints describe large files: sampled (a
    # few MB read per file, training/manifests.py) or full (every byte).
    digest: DigestMode
    progress_seconds: float = Field(ge=0)
    system_metrics_seconds: float = Field(ge=0)
    # bf16 autocast (fp32 master weights) on a CPU with bf16 matrix units; off: fp32 on CPUs.
    cpu_bf16: bool

    @field_validator("env", mode="before")
    @classmethod
    def _environment_of_strings(cls, value: Any) -> Any:
        """Names of environment variables to strings: YAML reads ``NCCL_IB_DISABLE: 1`` as a
        number, which would reach the workers as whatever ``str`` made of it."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"must map variable names to strings, not {type(value).__name__}")
        for name, setting in value.items():
            if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not isinstance(setting, str):
                raise ValueError(
                    f"{name} is {setting!r} ({type(setting).__name__}); environment values are "
                    f'strings: quote it ({name}: "{setting}")'
                )
        return value


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Placement:
    """Where a launch runs: the launch parameters with the cluster's values filled in.

    ``standalone``: one machine alone, torchrun's own rendezvous on a free port.
    """

    nproc_per_node: int | Literal["auto"]
    nnodes: int
    node_rank: int
    rdzv_endpoint: str | None
    job_id: str | None
    standalone: bool


# Cluster readings already logged by this process: each is logged once, not per launch.
_REPORTED: set[ClusterJob] = set()


def placement(config: LaunchConfig, environ: Mapping[str, str] | None = None) -> Placement:
    """``config`` over the scheduler's values (``training/cluster.py``) over one process on
    one machine. A scheduler's endpoint is used on several machines (one machine runs
    standalone, on a free port), except under Kubeflow, whose ``PET_*`` variables say how
    torchrun is to meet even on one."""
    cluster = read_cluster(os.environ if environ is None else environ)
    if cluster is not None and cluster not in _REPORTED:
        _REPORTED.add(cluster)
        logger.info(
            "Read the job from %s%s: nnodes=%s, node_rank=%s, rdzv_endpoint=%s, "
            "nproc_per_node=%s (explicit launch parameters win)",
            cluster.scheduler,
            "" if cluster.job_id is None else f" (job {cluster.job_id})",
            cluster.nnodes,
            cluster.node_rank,
            cluster.rdzv_endpoint,
            cluster.nproc_per_node,
        )

    def chosen(name: str, otherwise: Any) -> Any:
        explicit = getattr(config, name)
        if explicit is not None:
            return explicit
        found = None if cluster is None else getattr(cluster, name)
        return otherwise if found is None else found

    nnodes, node_rank = chosen("nnodes", 1), chosen("node_rank", 0)
    if node_rank >= nnodes:
        raise ValueError(
            f"launch.node_rank is {node_rank} on {nnodes} machine(s): it must be 0 to {nnodes - 1}."
        )
    endpoint = config.rdzv_endpoint
    kubeflow = cluster is not None and cluster.scheduler == "kubeflow" and config.nnodes is None
    if endpoint is None and cluster is not None and (nnodes > 1 or kubeflow):
        endpoint = cluster.rdzv_endpoint
    return Placement(
        nproc_per_node=chosen("nproc_per_node", 1),
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=endpoint,
        job_id=None if cluster is None else cluster.job_id,
        standalone=endpoint is None and nnodes == 1,
    )


def rendezvous_id(
    prefix: str, job_id: str | None, stage: str, fingerprint: str, number: int
) -> str:
    """The id of one launch's rendezvous, the same on every machine without their talking:
    the ``launch.rdzv_id`` prefix, the scheduler's job, the stage, the job's fingerprint (its
    settings and data) and how many launches of that job this process made before.

    Under a fixed id, the second launch of a run (align's DPO after its reward model, a tuning
    trial after another) could meet the first launch's closed rendezvous in a c10d store that
    still answers, and two jobs sharing an endpoint would meet each other.
    """
    parts = [prefix, job_id, stage, fingerprint, str(number)]
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in parts if part)


class TrainingLaunchError(RuntimeError):
    """A torchrun job ended with a non-zero exit code.

    When the failing worker recorded its error (an exception in an entrypoint's ``main``),
    ``rank`` (else ``local_rank``, on this machine), ``exit_code`` and ``traceback`` are that
    worker's, and ``tail`` is the end of its own log; otherwise (killed by a signal, or it left
    through ``sys.exit``) ``exit_code`` is torchrun's and ``tail`` the end of the combined output,
    which holds torchrun's own summary, except for a worker killed by a signal (the out-of-memory
    killer's SIGKILL): its ``rank``, ``local_rank`` and own log are named, and ``cause`` says so.
    """

    def __init__(
        self,
        module: str,
        exit_code: int,
        tail: list[str],
        rank: int | None = None,
        log_file: Path | None = None,
        traceback: str | None = None,
        local_rank: int | None = None,
        cause: str | None = None,
    ):
        self.module = module
        self.cause = cause
        self.exit_code = exit_code
        self.tail = tail
        self.rank = rank
        self.local_rank = local_rank
        self.log_file = log_file
        self.traceback = traceback
        if rank is not None:
            who = f" on rank {rank}"
        elif local_rank is not None:
            who = f" on local rank {local_rank}"
        else:
            who = ""
        where = "" if log_file is None else f" (full log: {log_file})"
        details = traceback.rstrip("\n") if traceback else "\n".join(tail)
        if cause:
            details = f"{cause}\n{details}"
        super().__init__(
            f"{module} failed under torchrun{who} with exit code {exit_code}{where}:\n{details}"
        )


def torchrun_arguments(
    config: LaunchConfig, rdzv_id: str | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The ``torch.distributed.run`` options for ``config`` in ``environ`` (default: this
    process's environment), meeting in rendezvous ``rdzv_id`` (default: ``config.rdzv_id``)."""
    where = placement(config, environ)
    nproc = _processes_per_node(where.nproc_per_node)
    arguments = [f"--nproc-per-node={nproc}", f"--max-restarts={config.max_restarts}"]
    if where.standalone:
        return ["--standalone", *arguments]
    if where.rdzv_endpoint is None:
        raise ValueError(
            "Training on several nodes needs launch.rdzv_endpoint (host:port), or a cluster "
            "scheduler (Slurm, Kubeflow Trainer, SkyPilot) that names the first node."
        )
    return [
        *arguments,
        f"--nnodes={where.nnodes}",
        f"--node-rank={where.node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={where.rdzv_endpoint}",
        f"--rdzv-id={rdzv_id or config.rdzv_id}",
        f"--rdzv-conf=join_timeout={config.rdzv_timeout}",
    ]


def launch(
    module: str,
    job: dict[str, Any],
    config: LaunchConfig,
    workdir: Path,
    log_dir: Path | None = None,
    tracking: TrackingRun | None = None,
    rdzv_id: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> None:
    """Write ``job`` into ``workdir``, then run ``module --config <job file>`` under torchrun.

    Each rank's output is streamed into this process's log and kept in a file under ``log_dir``
    (default: inside ``workdir``). Rank 0 logs its metrics into ``tracking``'s run (none: the
    job logs nothing to MLflow, whatever run the calling process has open). On several machines
    the launch meets the others in rendezvous ``rdzv_id`` (default: ``config.rdzv_id``).
    ``environment`` adds variables for the workers.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    name = module.rsplit(".", 1)[-1]
    job_file = workdir / f"{name}_job.yaml"
    job_file.write_text(yaml.safe_dump(_plain(job), sort_keys=False), encoding="utf-8")
    logs = _fresh_log_dir(log_dir or workdir / "torchrun_logs")
    command = [
        sys.executable,
        "-m",
        "llm_pipeline.training.torchrun",  # torch.distributed.run, without its teardown
        *torchrun_arguments(config, rdzv_id),
        f"--log-dir={logs}",
        "--tee=3",
        "--module",
        module,
        "--config",
        str(job_file),
    ]
    logger.info("Launching %s", " ".join(command[2:]))
    output: collections.deque[str] = collections.deque(maxlen=20 * _TAIL_LINES)
    env = _worker_environment(config, tracking)
    env.update(environment or {})
    env[LAUNCHED_AT_VARIABLE] = repr(time.time())
    # torchrun gives each worker a file of its own and copies the first failure into this one.
    env[ERROR_FILE_VARIABLE] = str(logs / _ERROR_FILE)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            output.append(line)
            logger.info("[%s] %s", name, line)
        exit_code = process.wait()
    if exit_code != 0:
        raise _launch_error(module, exit_code, list(output), logs)


def _launch_error(module: str, exit_code: int, output: list[str], logs: Path) -> Exception:
    """The error for a failed job: a worker killed by a signal, else the first failure a worker
    recorded, as torchrun copied it (with the worker's exit code) into the launch's error file,
    and that worker's own log."""
    # A worker killed by a signal is a cause, never a consequence (torchrun stops the others
    # with SIGTERM, which they mark): it goes first, before a peer's "connection closed".
    killed = _killed_worker(_latest_attempt(logs))
    if killed is not None:
        facts, folder = killed
        log_file, tail = _rank_log_tail(folder)
        return TrainingLaunchError(
            module,
            exit_code,
            tail,
            rank=facts.get("rank"),
            log_file=log_file,
            local_rank=facts.get("local_rank"),
            cause=(
                f"The worker (pid {facts.get('pid')}) ended without an error and without "
                "finishing: killed by a signal, most often SIGKILL from the kernel's "
                "out-of-memory killer (see `dmesg` or the scheduler's job record), or it left "
                "through os._exit. Its last lines:"
            ),
        )
    first = _read_error(logs / _ERROR_FILE)
    if first is None:
        return TrainingLaunchError(module, exit_code, output[-_TAIL_LINES:])
    local_rank, log_file, tail = None, None, output[-_TAIL_LINES:]
    for own_file in _latest_attempt(logs).glob(f"*/{_ERROR_FILE}"):
        own = _read_error(own_file)
        if own is not None and own["extraInfo"] == first["extraInfo"]:
            local_rank = int(own_file.parent.name)
            log_file, tail = _rank_log_tail(own_file.parent)
            break
    return TrainingLaunchError(
        module,
        int(first.get("errorCode") or exit_code),
        tail,
        rank=first["extraInfo"].get("rank"),
        log_file=log_file,
        traceback=first["extraInfo"].get("py_callstack") or first["message"],
        local_rank=local_rank,
    )


def _killed_worker(attempt: Path) -> tuple[dict[str, Any], Path] | None:
    """The first worker (by local rank) of ``attempt`` that started and neither ended nor was
    stopped by torchrun's SIGTERM: the markers ``jobs.record_errors`` writes."""
    for started in sorted(
        attempt.glob(f"*/{WORKER_STARTED}"), key=lambda path: int(path.parent.name)
    ):
        folder = started.parent
        stopped = folder / WORKER_SIGTERM
        if (folder / WORKER_ENDED).exists() or (stopped.exists() and stopped.stat().st_size):
            continue
        try:
            facts = json.loads(started.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return (facts, folder) if isinstance(facts, dict) else None
    return None


def _read_error(path: Path) -> dict[str, Any] | None:
    """The ``message`` of a torch error file (``record``'s format), or None without one."""
    try:
        error = json.loads(path.read_text(encoding="utf-8"))["message"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return error if isinstance(error, dict) and isinstance(error.get("extraInfo"), dict) else None


def _latest_attempt(logs: Path) -> Path:
    """torchrun's log folder of its last attempt (``<run id>/attempt_<n>``)."""
    attempts = sorted(logs.glob("*/attempt_*"), key=lambda path: int(path.name.split("_")[1]))
    return attempts[-1] if attempts else logs / "no_attempt"


def _rank_log_tail(rank_logs: Path) -> tuple[Path | None, list[str]]:
    """The last lines a local rank wrote: stderr, else stdout."""
    for stream in ("stderr.log", "stdout.log"):
        log_file = rank_logs / stream
        if log_file.exists():
            lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
            if lines:
                return log_file, lines[-_TAIL_LINES:]
    return None, []


def _fresh_log_dir(root: Path) -> Path:
    """A new folder per launch, so the logs of a failure are never those of an older run."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))


def _processes_per_node(value: int | Literal["auto"]) -> int:
    if value != "auto":
        return value
    import torch

    return max(1, torch.cuda.device_count())


def _worker_environment(config: LaunchConfig, tracking: TrackingRun | None) -> dict[str, str]:
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        **{
            PROGRESS_SECONDS_VARIABLE: str(config.progress_seconds),
            SYSTEM_METRICS_SECONDS_VARIABLE: str(config.system_metrics_seconds),
            CPU_BF16_VARIABLE: "1" if config.cpu_bf16 else "0",
            DDP_TIMEOUT_VARIABLE: str(config.ddp_timeout),
            DIGEST_VARIABLE: config.digest,
        },
    )
    env.update(config.env)
    # The workers' output is a pipe read line by line: a redrawn bar (saving shards, mapping a
    # data set) would become a log line per redraw. Rank 0 logs progress lines instead.
    for library in ("HF_HUB", "HF_DATASETS"):
        env.setdefault(f"{library}_DISABLE_PROGRESS_BARS", "1")
    nproc = _processes_per_node(placement(config).nproc_per_node)
    if nproc > 1 and "OMP_NUM_THREADS" not in env:
        # torchrun would set 1; on a CPU-only node the CPUs this job may use are better shared out.
        env["OMP_NUM_THREADS"] = str(max(1, usable_cpu_count() // nproc))
    # A run id inherited from a launching job must not leak into this one.
    env.pop(RUN_ID_VARIABLE, None)
    if tracking is not None:
        env[RUN_ID_VARIABLE] = tracking.run_id
        env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri
    return env


def seconds_since_launch() -> float | None:
    """In a worker: seconds since ``launch`` started torchrun (None outside a launched job)."""
    launched = os.environ.get(LAUNCHED_AT_VARIABLE)
    return time.time() - float(launched) if launched else None


def _plain(value: Any) -> Any:
    """Paths and tuples as YAML can write them safely."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
