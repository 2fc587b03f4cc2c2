"""The torchrun launcher: its arguments, and a real failing job's error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm_pipeline.training.launch import (
    LaunchConfig,
    TrainingLaunchError,
    launch,
    torchrun_arguments,
)


def test_one_node_runs_standalone():
    arguments = torchrun_arguments(LaunchConfig(nproc_per_node=2))
    assert arguments[0] == "--standalone"
    assert "--nproc-per-node=2" in arguments


def test_several_nodes_rendezvous_with_c10d():
    config = LaunchConfig(nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29400", rdzv_id="job7")
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
        torchrun_arguments(LaunchConfig(nnodes=2))


def test_unknown_launch_keys_fail_loudly():
    with pytest.raises(ValidationError):
        LaunchConfig.model_validate({"nproc_per_node": 1, "num_gpus": 8})


@pytest.mark.slow
def test_a_failing_job_raises_with_exit_code_and_its_last_lines(tmp_path):
    job = {"train_file": str(tmp_path / "missing.jsonl"), "not_a_field": 1}
    with pytest.raises(TrainingLaunchError) as error:
        launch("llm_pipeline.training.pretrain", job, LaunchConfig(), tmp_path)
    assert error.value.exit_code != 0
    tail = "\n".join(error.value.tail)
    assert "not_a_field" in tail
    assert "Extra inputs are not permitted" in tail
