"""Staged model folders name their process and machine; a killed process's are removed by the
next launch on the same machine, and nobody else's are."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from support import parameters_of

from llm_pipeline.training.launch import LaunchConfig
from llm_pipeline.training.stage_jobs import (
    STAGING_PREFIX,
    _new_output_dir,
    remove_abandoned_outputs,
)


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def staged(root, pid: int, host: str, suffix: str = "abc123"):
    folder = root / f"{STAGING_PREFIX}{pid}@{host}-{suffix}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_only_the_folders_of_ended_processes_on_this_machine_are_removed(tmp_path):
    host = socket.gethostname()
    abandoned = staged(tmp_path, ended_pid(), host)
    ours = staged(tmp_path, os.getpid(), host)
    elsewhere = staged(tmp_path, ended_pid(), "another-machine.example")
    older_release = tmp_path / f"{STAGING_PREFIX}k2j4h1"  # no owner in its name
    older_release.mkdir()
    finished_model = tmp_path / "sft_model"
    finished_model.mkdir()

    removed = remove_abandoned_outputs(tmp_path)

    assert removed == [abandoned]
    assert not abandoned.exists()
    assert ours.exists() and elsewhere.exists() and older_release.exists()
    assert finished_model.exists()


def test_a_new_output_folder_names_its_process_and_clears_what_a_killed_one_left(tmp_path):
    config = LaunchConfig.model_validate(parameters_of("launch", staging_root=str(tmp_path)))
    abandoned = staged(tmp_path, ended_pid(), socket.gethostname())

    folder = _new_output_dir(config)

    assert folder.parent == tmp_path
    assert folder.name.startswith(f"{STAGING_PREFIX}{os.getpid()}@{socket.gethostname()}-")
    assert not abandoned.exists()
    # Its own folder survives the next launch of the same process.
    second = _new_output_dir(config)
    assert folder.exists() and second.exists()
