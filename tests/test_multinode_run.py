"""End to end on two machines: `kedro run --pipeline align` in two copies of a finished tiny
project, as node 0 and node 1 of one job on localhost, sharing only the checkpoint root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import command_environment, copy_of_finished_run, free_port, tool

pytestmark = pytest.mark.slow


def latest_model(project: Path, name: str) -> Path:
    versions = sorted((project / "data/06_models" / name).iterdir())
    return versions[-1] / name


def test_align_on_two_machines_ends_with_the_same_models_on_both(finished_tiny_run, tmp_path):
    """align as DPO alone: one launch, both machines end with the same aligned model. Two
    consecutive launches on two machines (the reward model, then DPO, as conf/tiny aligns) are
    tested on a small job in tests/training/test_launch.py: here they would double the test's
    minute on two cores for no other path of the code."""
    finished, _ = finished_tiny_run
    shared = tmp_path / "shared_checkpoints"
    endpoint = f"127.0.0.1:{free_port()}"
    machines = []
    for rank in (0, 1):
        project = copy_of_finished_run(finished_tiny_run, tmp_path / f"machine{rank}")
        params = (
            f"launch.nnodes=2,launch.node_rank={rank},launch.rdzv_endpoint={endpoint},"
            f"launch.checkpoint_root={shared},launch.rdzv_timeout=300,"
            "align.reward_model_with_dpo=false"
        )
        log = (tmp_path / f"machine{rank}.log").open("w")
        command = [tool("kedro"), "run", "--env", "tiny", "--pipeline", "align", "--params", params]
        process = subprocess.Popen(
            command, cwd=project, env=command_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        machines.append((project, process, log))
    try:
        for _, process, _ in machines:
            process.wait(timeout=900)
    finally:
        for _, process, log in machines:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for rank, (_, process, _) in enumerate(machines):
        output = (tmp_path / f"machine{rank}.log").read_text()
        assert process.returncode == 0, output[-4000:]
    (zero, _, _), (one, _, _) = machines
    for name in ("reward_model", "aligned_model"):
        before = len(list((finished / "data/06_models" / name).iterdir()))
        for project in (zero, one):
            assert len(list((project / "data/06_models" / name).iterdir())) == before + 1, name
    for project in (zero, one):  # saying why none was trained: nothing was launched for it
        assert [path.name for path in latest_model(project, "reward_model").iterdir()] == [
            "not_trained.json"
        ]
    weights = [
        latest_model(project, "aligned_model") / "model.safetensors" for project in (zero, one)
    ]
    assert weights[0].read_bytes() == weights[1].read_bytes()
    # Every machine took its copy: the last one removed the shared folders.
    assert not [path for path in shared.rglob("*") if path.is_file()]
