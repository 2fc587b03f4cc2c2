"""Training survives being killed: complete checkpoints only, resumed to the same weights.

The kill test runs the pretrain node in a child process, SIGKILLs that process's whole group at
a random step after a checkpoint completed, re-runs the node and compares the final weights with
an uninterrupted run's. Set ``RESUME_TEST_KILL_STEP`` to replay a given kill step.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from support import launch_config, parameters_of, saved_weights, shop_sentences

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.settings import CONFIG_LOADER_ARGS
from llm_pipeline.training.checkpoints import (
    MARKER_FILE,
    checkpoint_problem,
    last_complete_checkpoint,
    write_marker,
)
from llm_pipeline.training.stage_jobs import job_checkpoint_dir

logger = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[2] / "conf"
MAX_STEPS, SAVE_STEPS = 40, 4
# Run the pretrain node in a child process whose output the test reads line by line.
NODE_SCRIPT = """
import json, logging, sys
from pathlib import Path
import pandas as pd
from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.pipelines.pretrain.nodes import pretrain_base_model
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
documents = pd.read_json(sys.argv[1], lines=True)
params, launch = (json.loads(Path(name).read_text()) for name in sys.argv[3:5])
pretrain_base_model(
    documents, documents.iloc[:0], ModelFolder(Path(sys.argv[2])), None, params, launch
)
"""


def tiny_pretrain_params() -> dict:
    """The tiny environment's pretrain section, checkpointing every few steps."""
    loader = OmegaConfigLoader(str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": "tiny"})
    params = loader["parameters"]["pretrain"]
    params["training"].update(
        max_steps=MAX_STEPS,
        per_device_train_batch_size=8,
        eval_strategy="no",
        logging_steps=1,
        save_strategy="steps",
        save_steps=SAVE_STEPS,
        save_total_limit=2,
        seed=7,
        data_seed=7,
    )
    return params


@pytest.fixture(scope="module")
def pretrain_inputs(tmp_path_factory) -> dict:
    from llm_pipeline.pipelines.pretrain.nodes import train_document_tokenizer

    root = tmp_path_factory.mktemp("resume")
    documents = pd.DataFrame({"text": shop_sentences() * 3})
    params = tiny_pretrain_params()
    tokenizer = train_document_tokenizer(documents, None, params)
    documents.to_json(root / "documents.jsonl", orient="records", lines=True)
    (root / "params.json").write_text(json.dumps(params))
    return {"root": root, "documents": documents, "tokenizer": tokenizer, "params": params}


def run_node(inputs: dict, checkpoint_root: Path) -> ModelFolder:
    from llm_pipeline.pipelines.pretrain.nodes import pretrain_base_model

    documents = inputs["documents"]
    launch = parameters_of(
        "launch",
        checkpoint_root=str(checkpoint_root),
        staging_root=str(checkpoint_root.parent / "models"),
    )
    return pretrain_base_model(
        documents, documents.iloc[:0], inputs["tokenizer"], None, inputs["params"], launch
    )


def kill_node_at_step(inputs: dict, checkpoint_root: Path, kill_step: int) -> list[str]:
    """Start the node in a process group of its own and SIGKILL the group at ``kill_step``."""
    root = inputs["root"]
    (root / "launch.json").write_text(
        json.dumps(
            parameters_of(
                "launch",
                checkpoint_root=str(checkpoint_root),
                staging_root=str(checkpoint_root.parent / "models"),
            )
        )
    )
    arguments = [root / "documents.jsonl", inputs["tokenizer"].path, root / "params.json"]
    command = [sys.executable, "-c", NODE_SCRIPT, *map(str, arguments), str(root / "launch.json")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines, steps = [], 0
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        steps += "{'loss'" in line
        if steps >= kill_step and any(checkpoint_root.rglob(MARKER_FILE)):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait()
    tail = "\n".join(lines[-30:])
    assert process.returncode == -signal.SIGKILL, f"not killed at step {kill_step}:\n{tail}"
    return lines


def workers_of(lines: list[str]) -> list[int]:
    """Live processes whose command line names the killed launch's job file."""
    launched = next(line for line in lines if "Launching" in line)
    job_file = re.search(r"--config (\S+)", launched)[1]
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and job_file in (entry / "cmdline").read_text():
                alive.append(int(entry.name))
        except OSError:
            continue
    return alive


@pytest.mark.slow
def test_a_killed_pretraining_resumes_to_the_weights_of_an_uninterrupted_run(
    pretrain_inputs, tmp_path, caplog
):
    kill_step = int(os.environ.get("RESUME_TEST_KILL_STEP", 0)) or random.randint(
        SAVE_STEPS + 1, MAX_STEPS // 2 + 4
    )
    logger.warning("Killing at step %d (replay with RESUME_TEST_KILL_STEP)", kill_step)
    uninterrupted = run_node(pretrain_inputs, tmp_path / "uninterrupted")

    lines = kill_node_at_step(pretrain_inputs, tmp_path / "killed", kill_step)
    deadline = time.monotonic() + 10
    while workers_of(lines) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workers_of(lines), f"workers outlived their launcher (kill step {kill_step})"
    assert list((tmp_path / "killed").rglob("checkpoint-*")), f"kill step {kill_step}"

    with caplog.at_level(logging.INFO):
        resumed = run_node(pretrain_inputs, tmp_path / "killed")
    resumed_at = re.search(r"Resuming from \S+checkpoint-(\d+) \(step (\d+)\)", caplog.text)
    assert resumed_at, f"the re-run did not say it resumed (kill step {kill_step})"
    assert resumed_at[1] == resumed_at[2] and int(resumed_at[1]) >= SAVE_STEPS

    expected, actual = saved_weights(uninterrupted.path), saved_weights(resumed.path)
    assert expected.keys() == actual.keys()
    different = [name for name in expected if not expected[name].equal(actual[name])]
    assert not different, f"weights differ after resuming at step {resumed_at[1]}: {different}"
    assert not list((tmp_path / "killed").rglob("checkpoint-*")), "checkpoints kept after success"


def fake_checkpoint(folder: Path, step: int) -> Path:
    """A checkpoint folder as the Trainer leaves it, marked complete as the callback does."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    write_marker(path, step)
    return path


def test_a_truncated_latest_checkpoint_is_skipped_for_the_previous_one(tmp_path, caplog):
    fake_checkpoint(tmp_path, 4)
    previous = fake_checkpoint(tmp_path, 8)
    latest = fake_checkpoint(tmp_path, 12)
    weights_file = latest / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == previous
    assert f"Skipping checkpoint {latest}: model.safetensors has 1000 bytes" in caplog.text
    assert "truncated" in caplog.text
    assert not latest.exists()


def test_corrupt_bytes_of_the_same_size_are_detected(tmp_path):
    checkpoint = fake_checkpoint(tmp_path, 4)
    weights_file = checkpoint / "model.safetensors"
    corrupted = bytearray(weights_file.read_bytes())
    corrupted[100] ^= 0xFF
    weights_file.write_bytes(bytes(corrupted))
    assert "SHA-256" in checkpoint_problem(checkpoint)
    assert last_complete_checkpoint(tmp_path) is None


def test_a_checkpoint_whose_save_was_interrupted_is_never_resumed(tmp_path, caplog):
    previous = fake_checkpoint(tmp_path, 4)
    interrupted = tmp_path / "checkpoint-8"
    interrupted.mkdir()
    (interrupted / "model.safetensors").write_bytes(b"half")
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == previous
    assert "no completion marker" in caplog.text
    assert checkpoint_problem(previous) is None


def test_a_file_added_after_the_marker_makes_the_checkpoint_suspect(tmp_path):
    checkpoint = fake_checkpoint(tmp_path, 4)
    (checkpoint / "rng_state_1.pth").write_bytes(b"late")
    assert "unexpected ['rng_state_1.pth']" in checkpoint_problem(checkpoint)


def test_checkpoints_are_kept_per_job_and_data(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "one"}\n')
    job = {"block_size": 64, "training": {"learning_rate": 1e-3}}
    config = launch_config(checkpoint_root=tmp_path / "checkpoints")
    module = "llm_pipeline.training.pretrain"

    first = job_checkpoint_dir(module, job, {"train_file": data}, config)
    assert first == job_checkpoint_dir(module, job, {"train_file": data}, config)
    assert first.parent == tmp_path / "checkpoints" / "pretrain"
    changed = {**job, "training": {"learning_rate": 2e-3}}
    assert job_checkpoint_dir(module, changed, {"train_file": data}, config) != first
    data.write_text('{"text": "two"}\n')
    assert job_checkpoint_dir(module, job, {"train_file": data}, config) != first
    assert job_checkpoint_dir(module, job, {"train_file": data}, launch_config()) is None
