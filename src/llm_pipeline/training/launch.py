"""Start a training entrypoint under torchrun, the one place the project does so.

The launcher runs ``python -m torch.distributed.run`` as a child process with an argument list
(never a shell string), hands the workers the active MLflow run so rank 0 logs into it, streams
their output into the log and, when they fail, raises an error with the exit code and the last
lines they printed.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

RUN_ID_VARIABLE = "LLM_PIPELINE_MLFLOW_RUN_ID"
_TAIL_LINES = 40


class LaunchConfig(BaseModel):
    """How many processes on how many machines; ``rdzv_endpoint`` unset means this node alone."""

    model_config = ConfigDict(extra="forbid")

    nproc_per_node: int | Literal["auto"] = 1
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    rdzv_endpoint: str | None = None
    rdzv_id: str = "llm-pipeline"
    max_restarts: int = Field(0, ge=0)


class TrainingLaunchError(RuntimeError):
    """A torchrun job ended with a non-zero exit code."""

    def __init__(self, module: str, exit_code: int, tail: list[str]):
        self.module = module
        self.exit_code = exit_code
        self.tail = tail
        last = "\n".join(tail)
        super().__init__(f"{module} failed under torchrun with exit code {exit_code}:\n{last}")


def torchrun_arguments(config: LaunchConfig) -> list[str]:
    """The ``torch.distributed.run`` options for ``config``."""
    nproc = _processes_per_node(config.nproc_per_node)
    arguments = [f"--nproc-per-node={nproc}", f"--max-restarts={config.max_restarts}"]
    if config.rdzv_endpoint is None and config.nnodes == 1:
        return ["--standalone", *arguments]
    if config.rdzv_endpoint is None:
        raise ValueError("Training on several nodes needs launch.rdzv_endpoint (host:port).")
    return [
        *arguments,
        f"--nnodes={config.nnodes}",
        f"--node-rank={config.node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={config.rdzv_endpoint}",
        f"--rdzv-id={config.rdzv_id}",
    ]


def launch(module: str, job: dict[str, Any], config: LaunchConfig, workdir: Path) -> None:
    """Write ``job`` into ``workdir``, then run ``module --config <job file>`` under torchrun."""
    workdir.mkdir(parents=True, exist_ok=True)
    job_file = workdir / f"{module.rsplit('.', 1)[-1]}_job.yaml"
    job_file.write_text(yaml.safe_dump(_plain(job), sort_keys=False), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_arguments(config),
        "--module",
        module,
        "--config",
        str(job_file),
    ]
    logger.info("Launching %s", " ".join(command[2:]))
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_worker_environment(config),
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            logger.info("[%s] %s", module.rsplit(".", 1)[-1], line)
        exit_code = process.wait()
    if exit_code != 0:
        raise TrainingLaunchError(module, exit_code, list(tail))


def _processes_per_node(value: int | Literal["auto"]) -> int:
    if value != "auto":
        return value
    import torch

    return max(1, torch.cuda.device_count())


def _worker_environment(config: LaunchConfig) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    nproc = _processes_per_node(config.nproc_per_node)
    if nproc > 1 and "OMP_NUM_THREADS" not in env:
        # torchrun would set 1; on a CPU-only node the cores are better shared out.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None else None
    if run is not None:
        env[RUN_ID_VARIABLE] = run.info.run_id
        env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    return env


def _plain(value: Any) -> Any:
    """Paths and tuples as YAML can write them safely."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
