"""The torchrun launcher: its arguments, a failing rank's error, two nodes meeting."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
from pydantic import ValidationError
from support import free_port, job_module, launch_config, parameters_of

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


# Rank 1 is killed as the out-of-memory killer does it; rank 0 waits (as in an NCCL collective,
# which does not notice a dead peer) until torchrun stops it.
RANK_ONE_KILLED = """
import os, signal, sys, time
import torch.distributed as dist
from llm_pipeline.training.jobs import record_errors

def wait_for_rank_one():
    time.sleep(120)

@record_errors
def main():
    dist.init_process_group("gloo")
    print(f"rank {dist.get_rank()} starts", file=sys.stderr, flush=True)
    if dist.get_rank() == 1:
        print("rank 1 allocates too much", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    wait_for_rank_one()

main()
"""


def test_a_rank_killed_by_a_signal_is_named_from_the_workers_markers(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "rank_one_killed", RANK_ONE_KILLED)
    with pytest.raises(TrainingLaunchError) as error:
        launch(module, {}, launch_config(nproc_per_node=2), tmp_path / "job")
    failure = error.value
    assert (failure.rank, failure.local_rank, failure.traceback) == (1, 1, None)
    assert failure.log_file.parts[-2:] == ("1", "stderr.log")
    assert "rank 1 allocates too much" in failure.tail
    message = str(failure)
    assert message.startswith("rank_one_killed failed under torchrun on rank 1 with exit code")
    assert "killed by a signal" in message and "out-of-memory" in message
    # Rank 0 was stopped by torchrun: its stacks show where it waited.
    rank_zero = failure.log_file.parents[1] / "0"
    assert "in wait_for_rank_one" in (rank_zero / "sigterm_stacks.txt").read_text()


# An entrypoint's end, as the training modules end: exit_without_teardown(main()) with a process
# group still open, an exit handler to run and, on the ranks in "thread_ranks", a non-daemon
# thread still writing (the ordinary exit, which waits for it; the others leave at once).
ENDS_FAST = (
    WORKER_OUTPUT_DIR
    + """
import atexit, threading, time
import torch.distributed as dist
from llm_pipeline.process_exit import exit_without_teardown
from llm_pipeline.training.jobs import record_errors

@record_errors
def main():
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    atexit.register(lambda: (folder / f"atexit{rank}").write_text("ran"))
    if rank in yaml.safe_load(parser.parse_args().config.read_text())["thread_ranks"]:
        def late():
            time.sleep(1)
            (folder / f"thread{rank}").write_text("finished")
        threading.Thread(target=late).start()
    dist.barrier()  # as training ends: every rank has met the others
    print(f"rank {rank} done", flush=False)
    return 0

exit_without_teardown(main())
"""
)


def test_a_worker_that_exits_early_still_runs_its_exit_handlers_and_threads(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "ends_fast", ENDS_FAST)
    job = {"output_dir": tmp_path, "thread_ranks": [1]}
    launch(module, job, launch_config(nproc_per_node=2), tmp_path / "logs")
    for rank in (0, 1):
        assert (tmp_path / f"atexit{rank}").read_text() == "ran"
        assert (tmp_path / f"thread{rank}").exists() == (rank == 1)
        worker_log = next((tmp_path / "logs").rglob(f"attempt_0/{rank}/stdout.log"))
        assert f"rank {rank} done" in worker_log.read_text()


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


# As the training entrypoints do: every rank takes part, only rank 0 writes the output folder,
# and main is decorated (which declares the folder complete for the other machines). A second
# launch reads the model of the first (``model_dir``), as align's RL reads the reward model.
RANK_ZERO_SAVES = (
    WORKER_OUTPUT_DIR
    + """
import torch
import torch.distributed as dist
from llm_pipeline.training.jobs import record_errors

@record_errors
def main():
    job = yaml.safe_load(parser.parse_args().config.read_text())
    dist.init_process_group("gloo")
    total = torch.tensor([dist.get_rank() + 1.0])
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        before = None
        if job.get("model_dir"):
            before = json.loads((Path(job["model_dir"]) / "result.json").read_text())
        folder.mkdir(parents=True, exist_ok=True)
        result = {"world_size": dist.get_world_size(), "total": total.item(), "before": before}
        (folder / "result.json").write_text(json.dumps(result))
        (folder / "weights.bin").write_bytes(bytes(range(256)) * 64 * job["launch"])
    dist.destroy_process_group()
    return 0

main()
"""
)


def two_machines(tmp_path, endpoint: str, **overrides) -> list[dict]:
    """The launch parameters of two machines sharing ``tmp_path / "shared"``."""
    return [
        parameters_of(
            "launch",
            checkpoint_root=tmp_path / "shared",
            # Each machine's own models folder: the model is moved from there by a rename.
            staging_root=tmp_path / f"node{rank}" / "models",
            nnodes=2,
            node_rank=rank,
            rdzv_endpoint=endpoint,
            rdzv_timeout=120,
            handover_timeout=60,
            **overrides,
        )
        for rank in (0, 1)
    ]


def files_of(folder) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.mark.slow
def test_every_machine_hands_back_the_model_of_each_of_two_consecutive_launches(
    tmp_path, monkeypatch
):
    """Like align on two machines: the reward model, then a second job that reads it. Before,
    the machine without rank 0 stopped after the first launch and the second one hung. The
    second launch keeps its checkpoints (``keep_checkpoints``): its shared copy stays."""
    from llm_pipeline.training.stage_jobs import run_training_job

    module = job_module(tmp_path, monkeypatch, "rank_zero_saves", RANK_ZERO_SAVES)
    machines = two_machines(tmp_path, f"127.0.0.1:{free_port()}")

    def stage(params: dict) -> list:
        first = run_training_job(module, {"launch": 1}, {}, params)
        kept = {**params, "keep_checkpoints": True}
        second = run_training_job(module, {"launch": 2, "model_dir": first.path}, {}, kept)
        return [first, second]

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(stage, params) for params in machines]
        folders = [run.result(timeout=300) for run in runs]

    for launch_number in (0, 1):
        # Each machine's model is in its own models folder, for the catalog to rename into place.
        for rank in (0, 1):
            assert folders[rank][launch_number].path.parent == tmp_path / f"node{rank}" / "models"
        mine, theirs = (files_of(folders[rank][launch_number].path) for rank in (0, 1))
        assert mine == theirs
        assert len(mine["weights.bin"]) == 256 * 64 * (launch_number + 1)
    first = json.loads((folders[0][0].path / "result.json").read_text())
    second = json.loads((folders[1][1].path / "result.json").read_text())
    assert first == {"world_size": 2, "total": 3.0, "before": None}
    assert second == {"world_size": 2, "total": 3.0, "before": first}
    # The first launch's shared folders went with the last machine to take its copy
    # (keep_checkpoints: false); the second's stay, with every machine's marker.
    [handover] = (tmp_path / "shared").glob("rank_zero_saves/*/handover/*")
    assert handover.name.startswith("llm-pipeline-rank_zero_saves-")
    assert {path.name for path in handover.iterdir()} >= {"model", "complete.json", "taken-0"}
    assert (handover / "taken-1").exists()
    assert files_of(handover / "model") == files_of(folders[0][1].path)
    shared_files = [path for path in (tmp_path / "shared").rglob("*") if path.is_file()]
    assert shared_files and all(handover.parents[1] in path.parents for path in shared_files)


def test_several_machines_need_a_shared_checkpoint_root(tmp_path):
    from llm_pipeline.training.stage_jobs import run_training_job

    params = parameters_of(
        "launch",
        checkpoint_root=None,
        staging_root=None,
        nnodes=2,
        node_rank=0,
        rdzv_endpoint="127.0.0.1:1",
    )
    with pytest.raises(ValueError, match=r"needs launch\.checkpoint_root"):
        run_training_job("never_started", {}, {}, params)


# The worker reports what the launch gave it beyond torchrun's own variables.
REPORTS_ITS_ENVIRONMENT = (
    WORKER_OUTPUT_DIR
    + """
names = ["NCCL_SOCKET_IFNAME", "NCCL_DEBUG", "LLM_PIPELINE_DDP_TIMEOUT"]
folder.mkdir(parents=True, exist_ok=True)
(folder / "environment.json").write_text(json.dumps({name: os.environ.get(name) for name in names}))
"""
)


def test_workers_get_launch_env_and_the_ddp_timeout(tmp_path, monkeypatch):
    module = job_module(tmp_path, monkeypatch, "reports_environment", REPORTS_ITS_ENVIRONMENT)
    config = LaunchConfig.model_validate(
        {
            **parameters_of("launch", checkpoint_root=None, staging_root=None, ddp_timeout=321),
            "env": {"NCCL_SOCKET_IFNAME": "eth7", "NCCL_DEBUG": "WARN"},
        }
    )
    launch(module, {"output_dir": str(tmp_path / "out")}, config, tmp_path / "job")
    reported = json.loads((tmp_path / "out" / "environment.json").read_text())
    assert reported == {
        "NCCL_SOCKET_IFNAME": "eth7",
        "NCCL_DEBUG": "WARN",
        "LLM_PIPELINE_DDP_TIMEOUT": "321",
    }


def test_the_ddp_timeout_reaches_the_trainer_unless_its_section_sets_one(monkeypatch, tmp_path):
    from llm_pipeline.training.jobs import DDP_TIMEOUT_VARIABLE, trainer_defaults
    from llm_pipeline.training.pretrain import PretrainJob, training_arguments

    monkeypatch.setenv(DDP_TIMEOUT_VARIABLE, "321")
    assert trainer_defaults()["ddp_timeout"] == 321
    job = PretrainJob.model_validate(
        {
            "train_file": tmp_path / "train.jsonl",
            "tokenizer_dir": tmp_path,
            "output_dir": tmp_path / "out",
            "checkpoint_dir": tmp_path / "checkpoints",
            "block_size": 8,
            "training": {"max_steps": 1},
        }
    )
    assert training_arguments(job, evaluates=False).ddp_timeout == 321
    job.training["ddp_timeout"] = 7
    assert training_arguments(job, evaluates=False).ddp_timeout == 7
