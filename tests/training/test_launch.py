"""The torchrun launcher: its arguments, a failing rank's error, two nodes meeting."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket

import pytest
from pydantic import ValidationError
from support import launch_config, parameters_of

from llm_pipeline.training.launch import (
    LaunchConfig,
    TrainingLaunchError,
    launch,
    torchrun_arguments,
)


def test_one_node_runs_standalone():
    arguments = torchrun_arguments(launch_config(nproc_per_node=2))
    assert arguments[0] == "--standalone"
    assert "--nproc-per-node=2" in arguments


def test_several_nodes_rendezvous_with_c10d():
    config = launch_config(nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29400", rdzv_id="job7")
    arguments = torchrun_arguments(config)
    assert "--standalone" not in arguments
    for expected in (
        "--nnodes=2",
        "--node-rank=1",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=10.0.0.1:29400",
        "--rdzv-id=job7",
    ):
        assert expected in arguments


def test_several_nodes_without_an_endpoint_are_refused():
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        torchrun_arguments(launch_config(nnodes=2))


def test_unknown_launch_keys_fail_loudly():
    with pytest.raises(ValidationError, match="num_gpus"):
        LaunchConfig.model_validate(parameters_of("launch", num_gpus=8))


@pytest.mark.slow
def test_a_failing_job_raises_with_exit_code_and_its_last_lines(tmp_path):
    job = {"train_file": str(tmp_path / "missing.jsonl"), "not_a_field": 1}
    with pytest.raises(TrainingLaunchError) as error:
        launch("llm_pipeline.training.pretrain", job, launch_config(), tmp_path)
    assert error.value.exit_code != 0
    tail = "\n".join(error.value.tail)
    assert "not_a_field" in tail
    assert "Extra inputs are not permitted" in tail
    # The entrypoint's main records its exception: the rank and the traceback come with it.
    assert error.value.rank == 0
    assert "ValidationError" in error.value.traceback
    assert "not_a_field" in error.value.traceback


# As in the entrypoints: main is decorated, so that its exception reaches torch's error file.
RANK_ONE_RAISES = """
import sys
import torch.distributed as dist
from llm_pipeline.training.jobs import record_errors

def read_shard(rank):
    raise ValueError(f"rank {rank} cannot read its shard shard-{rank}.jsonl")

@record_errors
def main():
    dist.init_process_group("gloo")
    print(f"rank {dist.get_rank()} starts", file=sys.stderr, flush=True)
    if dist.get_rank() == 1:
        read_shard(1)
    dist.barrier()  # rank 0 waits for rank 1, which never comes

main()
"""

# A worker that leaves no error file: torch's record does not write one for sys.exit, and
# nothing can for a signal.
RANK_ONE_EXITS = """
import os, sys, time
rank = int(os.environ["RANK"])
if rank == 1:
    print("rank 1 gives up", file=sys.stderr, flush=True)
    raise SystemExit(3)
time.sleep(120)
"""

# The head of every worker below: its job's output folder, from the --config file launch writes.
WORKER_OUTPUT_DIR = """
import argparse, json, os
from pathlib import Path
import yaml
parser = argparse.ArgumentParser()
parser.add_argument("--config", type=Path)
folder = Path(yaml.safe_load(parser.parse_args().config.read_text())["output_dir"])
"""

ALL_REDUCE = (
    WORKER_OUTPUT_DIR
    + """
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
total = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(total)
(folder / f"rank{dist.get_rank()}.json").write_text(
    json.dumps({"world_size": dist.get_world_size(), "total": total.item()})
)
dist.destroy_process_group()
"""
)


def job_module(tmp_path, monkeypatch, name: str, source: str) -> str:
    """A worker module written into ``tmp_path``, importable by the workers torchrun starts."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    return name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_exception_on_one_rank_is_reported_from_torchs_error_files(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "rank_one_raises", RANK_ONE_RAISES)
    with pytest.raises(TrainingLaunchError) as error:
        launch(module, {}, launch_config(nproc_per_node=2), tmp_path / "job")
    failure = error.value
    assert (failure.rank, failure.local_rank, failure.exit_code) == (1, 1, 1)
    assert failure.traceback.startswith("Traceback (most recent call last):")
    assert "in read_shard" in failure.traceback
    assert failure.traceback.rstrip().endswith(
        "ValueError: rank 1 cannot read its shard shard-1.jsonl"
    )
    assert failure.log_file.parts[-2:] == ("1", "stderr.log")
    assert "rank 1 starts" in failure.tail
    message = str(failure)
    assert message.startswith("rank_one_raises failed under torchrun on rank 1 with exit code 1")
    assert "in read_shard" in message and "shard-1.jsonl" in message
    # What the launcher read: torchrun's copy of the first failure, with the rank and exit code.
    recorded = json.loads((failure.log_file.parents[3] / "error.json").read_text())
    assert recorded["message"]["extraInfo"]["rank"] == 1
    assert recorded["message"]["errorCode"] == 1


def test_a_rank_that_leaves_no_error_file_still_fails_the_launch_with_torchruns_summary(
    tmp_path, monkeypatch
):
    module = job_module(tmp_path, monkeypatch, "rank_one_exits", RANK_ONE_EXITS)
    with pytest.raises(TrainingLaunchError) as error:
        launch(module, {}, launch_config(nproc_per_node=2), tmp_path / "job")
    assert error.value.rank is None and error.value.traceback is None
    assert error.value.exit_code != 0
    assert "exitcode  : 3" in str(error.value)  # torchrun's summary, in the combined output


@pytest.mark.slow
def test_the_same_job_runs_as_two_nodes_meeting_at_a_c10d_endpoint(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "all_reduce_job", ALL_REDUCE)
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        launch_config(nnodes=2, node_rank=rank, rdzv_endpoint=endpoint, rdzv_id="two-nodes")
        for rank in (0, 1)
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [
            pool.submit(launch, module, {"output_dir": tmp_path}, node, tmp_path / f"node{rank}")
            for rank, node in enumerate(nodes)
        ]
        for run in runs:
            run.result(timeout=300)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert results == [{"world_size": 2, "total": 3.0}] * 2


FAILS_ONCE = (
    WORKER_OUTPUT_DIR
    + """
attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
(folder / f"attempt{attempt}").touch()
if attempt == 0:
    raise SystemExit("the first attempt dies, as a preempted worker would")
"""
)


def test_max_restarts_starts_a_failed_worker_again(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "fails_once", FAILS_ONCE)
    job = {"output_dir": str(tmp_path)}
    with pytest.raises(TrainingLaunchError):
        launch(module, job, launch_config(max_restarts=0), tmp_path / "no_restart")
    assert sorted(p.name for p in tmp_path.glob("attempt*")) == ["attempt0"]

    for marker in tmp_path.glob("attempt*"):
        marker.unlink()
    launch(module, job, launch_config(max_restarts=1), tmp_path / "one_restart")
    assert sorted(p.name for p in tmp_path.glob("attempt*")) == ["attempt0", "attempt1"]


# As the training entrypoints do: every rank takes part, only rank 0 writes the output folder.
RANK_ZERO_SAVES = (
    WORKER_OUTPUT_DIR
    + """
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
total = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(total)
if dist.get_rank() == 0:
    (folder / "rank0.json").write_text(json.dumps({"world_size": 2, "total": total.item()}))
dist.destroy_process_group()
"""
)


@pytest.mark.slow
def test_only_the_machine_of_rank_zero_hands_back_a_model_folder(tmp_path, monkeypatch):
    from llm_pipeline.torchrun_jobs import WorkerNodeFinished, run_training_job

    module = job_module(tmp_path, monkeypatch, "rank_zero_saves", RANK_ZERO_SAVES)
    endpoint = f"127.0.0.1:{free_port()}"
    launches = [
        parameters_of(
            "launch",
            checkpoint_root=None,
            nnodes=2,
            node_rank=rank,
            rdzv_endpoint=endpoint,
            rdzv_id="handback",
        )
        for rank in (0, 1)
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_training_job, module, {}, {}, params) for params in launches]
        outcomes = [run.exception(timeout=300) or run.result() for run in runs]

    # c10d gives rank 0 to either machine: that one hands back what rank 0 wrote, the other
    # stops without a folder.
    folders = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    stopped = [outcome for outcome in outcomes if isinstance(outcome, WorkerNodeFinished)]
    assert len(folders) == len(stopped) == 1
    assert "rank 0 ran on another machine" in str(stopped[0])
    found = json.loads((folders[0].path / "rank0.json").read_text())
    assert found == {"world_size": 2, "total": 3.0}
