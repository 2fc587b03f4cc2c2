"""Cluster schedulers read as the launch's defaults: Slurm, Kubeflow Trainer v2, SkyPilot."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError
from support import launch_config, parameters_of

from llm_pipeline.training.cluster import parse_hostlist, read_cluster
from llm_pipeline.training.launch import LaunchConfig, placement, torchrun_arguments

SCHEDULER_PREFIXES = ("SLURM_", "PET_", "SKYPILOT_")


@pytest.fixture(autouse=True)
def outside_any_scheduler(monkeypatch):
    """Whatever launched the tests, each test sets the scheduler it means."""
    import os

    for name in list(os.environ):
        if name.startswith(SCHEDULER_PREFIXES) or name == "MASTER_PORT":
            monkeypatch.delenv(name)


def scheduled(monkeypatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def slurm(monkeypatch, **extra: str) -> None:
    """The third of four nodes of Slurm job 4242, as ``srun`` describes it."""
    scheduled(
        monkeypatch,
        **{
            "SLURM_JOB_ID": "4242",
            "SLURM_NNODES": "4",
            "SLURM_JOB_NUM_NODES": "4",
            "SLURM_NODEID": "2",
            "SLURM_JOB_NODELIST": "gpu[07-09],login1",
            "SLURM_GPUS_ON_NODE": "8",
            **extra,
        },
    )


def test_slurm_gives_nodes_rank_first_host_and_gpus(monkeypatch):
    slurm(monkeypatch)
    arguments = torchrun_arguments(launch_config(), rdzv_id="run1")
    assert "--standalone" not in arguments
    for expected in (
        "--nproc-per-node=8",
        "--nnodes=4",
        "--node-rank=2",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=gpu07:29500",
        "--rdzv-id=run1",
    ):
        assert expected in arguments
    assert placement(launch_config()).job_id == "4242"


def test_slurm_reads_master_port_and_the_job_node_count_without_a_step(monkeypatch):
    slurm(monkeypatch, MASTER_PORT="12345")
    monkeypatch.delenv("SLURM_NNODES")
    monkeypatch.delenv("SLURM_GPUS_ON_NODE")
    where = placement(launch_config())
    assert (where.nnodes, where.rdzv_endpoint, where.nproc_per_node) == (4, "gpu07:12345", 1)


def test_a_slurm_job_on_one_node_runs_standalone_on_a_free_port(monkeypatch):
    slurm(monkeypatch, SLURM_NNODES="1", SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0")
    arguments = torchrun_arguments(launch_config())
    assert arguments[:2] == ["--standalone", "--nproc-per-node=8"]


def kubeflow(monkeypatch, **extra: str) -> None:
    """The second of two pods of a Kubeflow Trainer v2 TrainJob (its torch runtime)."""
    scheduled(
        monkeypatch,
        **{
            "PET_NNODES": "2",
            "PET_NODE_RANK": "1",
            "PET_MASTER_ADDR": "train-node-0-0.train",
            "PET_MASTER_PORT": "29400",
            "PET_NPROC_PER_NODE": "4",
            **extra,
        },
    )


def test_kubeflow_trainer_pet_variables(monkeypatch):
    kubeflow(monkeypatch)
    arguments = torchrun_arguments(launch_config(), rdzv_id="k")
    for expected in (
        "--nproc-per-node=4",
        "--nnodes=2",
        "--node-rank=1",
        "--rdzv-endpoint=train-node-0-0.train:29400",
    ):
        assert expected in arguments
    assert placement(launch_config()).job_id is None


def test_kubeflow_on_one_node_meets_at_its_master_rather_than_standalone(monkeypatch):
    kubeflow(monkeypatch, PET_NNODES="1", PET_NODE_RANK="0", PET_NPROC_PER_NODE="auto")
    arguments = torchrun_arguments(launch_config())
    assert "--standalone" not in arguments
    assert "--rdzv-endpoint=train-node-0-0.train:29400" in arguments
    assert "--nnodes=1" in arguments
    assert placement(launch_config()).nproc_per_node == "auto"
    # An explicit single node is standalone again.
    assert torchrun_arguments(launch_config(nnodes=1))[0] == "--standalone"


def test_skypilot_head_ip_first_and_its_task_id(monkeypatch):
    scheduled(
        monkeypatch,
        SKYPILOT_NUM_NODES="3",
        SKYPILOT_NODE_RANK="0",
        SKYPILOT_NODE_IPS="10.0.0.5\n10.0.0.6\n10.0.0.7\n",
        SKYPILOT_NUM_GPUS_PER_NODE="2",
        SKYPILOT_TASK_ID="sky-2026-12-04-21-00-00-000000_mycluster_3",
    )
    where = placement(launch_config())
    assert (where.nnodes, where.node_rank, where.rdzv_endpoint, where.nproc_per_node) == (
        3,
        0,
        "10.0.0.5:29500",
        2,
    )
    assert where.job_id == "sky-2026-12-04-21-00-00-000000_mycluster_3"


def test_explicit_parameters_win_over_the_scheduler(monkeypatch):
    slurm(monkeypatch)
    config = launch_config(nproc_per_node=2, nnodes=2, node_rank=0, rdzv_endpoint="10.1.1.1:29400")
    arguments = torchrun_arguments(config)
    for expected in (
        "--nproc-per-node=2",
        "--nnodes=2",
        "--node-rank=0",
        "--rdzv-endpoint=10.1.1.1:29400",
    ):
        assert expected in arguments


def test_without_a_scheduler_the_defaults_are_one_process_on_one_machine():
    assert read_cluster({}) is None
    where = placement(launch_config())
    assert (where.nproc_per_node, where.nnodes, where.node_rank, where.rdzv_endpoint) == (
        1,
        1,
        0,
        None,
    )
    assert where.standalone
    assert torchrun_arguments(launch_config()) == [
        "--standalone",
        "--nproc-per-node=1",
        "--max-restarts=0",
    ]


def test_what_the_scheduler_gave_is_logged_once(monkeypatch, caplog):
    slurm(monkeypatch, SLURM_JOB_ID="logged-once-7")
    with caplog.at_level(logging.INFO, logger="llm_pipeline.training.launch"):
        for _ in range(3):
            torchrun_arguments(launch_config())
    lines = [
        record.getMessage() for record in caplog.records if "Read the job" in record.getMessage()
    ]
    assert len(lines) == 1
    assert "slurm (job logged-once-7)" in lines[0]
    assert "nnodes=4, node_rank=2, rdzv_endpoint=gpu07:29500, nproc_per_node=8" in lines[0]


def test_a_scheduler_variable_that_is_no_number_is_named():
    with pytest.raises(ValueError, match="SLURM_NODEID='two'"):
        read_cluster({"SLURM_JOB_ID": "1", "SLURM_NODEID": "two"})


@pytest.mark.parametrize(
    ("hostlist", "hosts"),
    [
        ("gpu[01-04,07],login1", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07", "login1"]),
        ("node7", ["node7"]),
        ("a1,b2", ["a1", "b2"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
        ("gpu[009-010].cluster", ["gpu009.cluster", "gpu010.cluster"]),
    ],
)
def test_slurm_hostlists_expand_in_order(hostlist, hosts):
    assert parse_hostlist(hostlist) == hosts


@pytest.mark.parametrize("hostlist", ["gpu[01-04", "gpu[a-b]", ""])
def test_unreadable_hostlists_are_refused(hostlist):
    with pytest.raises(ValueError, match="host list"):
        parse_hostlist(hostlist)


def test_the_rendezvous_wait_is_torchruns_join_timeout():
    config = launch_config(nnodes=2, node_rank=0, rdzv_endpoint="h:1", rdzv_timeout=77)
    assert "--rdzv-conf=join_timeout=77" in torchrun_arguments(config)


def with_worker_env(variables: object) -> LaunchConfig:
    return LaunchConfig.model_validate({**parameters_of("launch"), "env": variables})


def test_worker_environment_variables_must_be_strings():
    with pytest.raises(ValidationError, match=r"NCCL_IB_DISABLE is 1 \(int\).*quote it"):
        with_worker_env({"NCCL_IB_DISABLE": 1})
    with pytest.raises(ValidationError, match="not an environment variable name"):
        with_worker_env({"NCCL DEBUG": "INFO"})
    with pytest.raises(ValidationError, match="must map variable names to strings"):
        with_worker_env(["NCCL_DEBUG=INFO"])
    config = with_worker_env({"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO"})
    assert config.env == {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO"}


def test_a_node_rank_beyond_the_machines_is_refused(monkeypatch):
    slurm(monkeypatch)
    with pytest.raises(ValueError, match="node_rank is 4 on 4 machine"):
        placement(launch_config(node_rank=4))


def docs_example(language: str, marker: str) -> str:
    """The code block of docs/team-and-cluster.md in ``language`` that contains ``marker``."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "team-and-cluster.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"one {language} block with {marker!r} in the docs"
    return found[0]


def params_of(command: str) -> dict:
    """The launch parameters a documented `kedro run ... --params a=b,c=d` gives."""
    import re

    pairs = re.search(r"--params[ ,]+([^\s\]']+)", command)[1].split(",")
    launch = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        assert key.startswith("launch."), key
        launch[key.removeprefix("launch.")] = value
    return launch


def documented_launch(command: str) -> LaunchConfig:
    return launch_config(**params_of(command))


def assert_torchrun_gets(config: LaunchConfig, nodes: int, rank: int, gpus: int, endpoint: str):
    arguments = torchrun_arguments(config, rdzv_id="x")
    for expected in (
        f"--nnodes={nodes}",
        f"--node-rank={rank}",
        f"--nproc-per-node={gpus}",
        f"--rdzv-endpoint={endpoint}",
    ):
        assert expected in arguments


def test_the_documented_slurm_script_gives_its_nodes_and_gpus(monkeypatch):
    """The docs' sbatch script, as srun starts it on the second of its nodes."""
    import re

    script = docs_example("bash", "#SBATCH")
    nodes = int(re.search(r"--nodes=(\d+)", script)[1])
    gpus = int(re.search(r"--gpus-per-node=(\d+)", script)[1])
    scheduled(
        monkeypatch,
        SLURM_JOB_ID="31337",
        SLURM_NNODES=str(nodes),
        SLURM_NODEID="1",
        SLURM_JOB_NODELIST=f"node[01-{nodes:02d}]",
        SLURM_GPUS_ON_NODE=str(gpus),
    )
    config = documented_launch(script)
    assert config.checkpoint_root is not None  # several machines need the shared root
    assert_torchrun_gets(config, nodes, 1, gpus, "node01:29500")
    assert placement(config).job_id == "31337"


def test_the_documented_kubeflow_trainjob_gives_its_nodes_and_gpus(monkeypatch):
    """The docs' TrainJob: Trainer v2's torch runtime sets PET_* from numNodes and the GPUs."""
    import re

    import yaml

    job = yaml.safe_load(docs_example("yaml", "kind: TrainJob"))
    trainer = job["spec"]["trainer"]
    nodes, gpus = trainer["numNodes"], trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"]
    scheduled(
        monkeypatch,
        PET_NNODES=str(nodes),
        PET_NODE_RANK="1",
        PET_NPROC_PER_NODE=str(gpus),
        PET_MASTER_ADDR="llm-pipeline-align-node-0-0.llm-pipeline-align",
        PET_MASTER_PORT="29400",
    )
    config = documented_launch(" ".join(trainer["command"]))
    assert_torchrun_gets(
        config, nodes, 1, gpus, "llm-pipeline-align-node-0-0.llm-pipeline-align:29400"
    )
    assert re.fullmatch(r"kedro run --pipeline align --params \S+", " ".join(trainer["command"]))


def test_the_documented_skypilot_task_gives_its_nodes_and_gpus(monkeypatch):
    import yaml

    task = yaml.safe_load(docs_example("yaml", "num_nodes:"))
    nodes = task["num_nodes"]
    gpus = int(task["resources"]["accelerators"].split(":")[1])
    scheduled(
        monkeypatch,
        SKYPILOT_NUM_NODES=str(nodes),
        SKYPILOT_NODE_RANK="0",
        SKYPILOT_NODE_IPS="10.0.0.5\n10.0.0.6\n",
        SKYPILOT_NUM_GPUS_PER_NODE=str(gpus),
        SKYPILOT_TASK_ID="sky-2026-12-05-llm",
    )
    config = documented_launch(task["run"])
    assert_torchrun_gets(config, nodes, 0, gpus, "10.0.0.5:29500")
