"""The model of a launch on several machines reaches every machine, and the shared copy goes
once every machine has taken it; rendezvous ids are the same on every machine and new per
launch."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import pytest
from support import launch_config

from llm_pipeline.training.handover import (
    HandoverError,
    clear_handover,
    everyone_took,
    handover_dir,
    mark_taken,
    take_model,
)
from llm_pipeline.training.jobs import HANDOVER_COMPLETE, HANDOVER_MODEL, declare_complete
from llm_pipeline.training.launch import placement, rendezvous_id
from llm_pipeline.training.stage_jobs import job_fingerprint, next_rendezvous_id


def save_as_rank_zero(handover, files: dict[str, bytes]) -> None:
    """What rank 0's entrypoint does: save the model folder, then declare it complete."""
    folder = handover / HANDOVER_MODEL
    (folder / "sub").mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    declare_complete(handover)


def hand_over(handover, destination, node_rank: int, nnodes: int) -> bool:
    """What each machine does after its launch; True when it saw every machine's marker."""
    destination.mkdir()
    take_model(handover, destination, timeout=30)
    mark_taken(handover, node_rank)
    return everyone_took(handover, nnodes)


MODEL = {"model.safetensors": b"\x00weights" * 1000, "sub/tokenizer.json": b'{"v": 1}'}


def test_two_machines_each_take_the_same_model_and_the_last_sees_every_marker(tmp_path):
    handover = handover_dir(tmp_path / "checkpoints" / "reward" / "abc", "llm-pipeline-x-1")
    clear_handover(handover)
    # The machines finish their launches before rank 0 has declared the model complete.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        taking = [
            pool.submit(hand_over, handover, tmp_path / f"node{rank}", rank, 2) for rank in (0, 1)
        ]
        time.sleep(1.0)
        assert not any(future.done() for future in taking)
        save_as_rank_zero(handover, MODEL)
        saw_all = [future.result(timeout=30) for future in taking]
    for rank in (0, 1):
        copied = {
            path.relative_to(tmp_path / f"node{rank}").as_posix(): path.read_bytes()
            for path in (tmp_path / f"node{rank}").rglob("*")
            if path.is_file()
        }
        assert copied == MODEL
    assert any(saw_all)
    assert everyone_took(handover, 2)


def test_a_machine_does_not_see_every_marker_before_every_machine_took_its_copy(tmp_path):
    handover = tmp_path / "handover"
    clear_handover(handover)
    save_as_rank_zero(handover, MODEL)
    assert hand_over(handover, tmp_path / "node1", 1, 3) is False
    assert hand_over(handover, tmp_path / "node0", 0, 3) is False
    assert hand_over(handover, tmp_path / "node2", 2, 3) is True


def test_a_copy_that_differs_from_the_declaration_is_taken_again_until_it_matches(tmp_path):
    """A shared file system that shows a file late or short: the machine copies again."""
    handover = tmp_path / "handover"
    clear_handover(handover)
    save_as_rank_zero(handover, MODEL)
    weights = handover / HANDOVER_MODEL / "model.safetensors"
    weights.write_bytes(b"short")  # as a lagging client would see it

    def catch_up():
        time.sleep(1.0)
        weights.write_bytes(MODEL["model.safetensors"])

    threading.Thread(target=catch_up).start()
    (tmp_path / "node1").mkdir()
    take_model(handover, tmp_path / "node1", timeout=30)
    assert (tmp_path / "node1" / "model.safetensors").read_bytes() == MODEL["model.safetensors"]


def test_a_model_that_never_comes_fails_with_the_folder_named(tmp_path):
    handover = tmp_path / "handover"
    clear_handover(handover)
    (tmp_path / "node1").mkdir()
    with pytest.raises(HandoverError) as error:
        take_model(handover, tmp_path / "node1", timeout=1)
    message = str(error.value)
    assert str(handover / HANDOVER_MODEL) in message
    assert "complete.json does not exist" in message
    assert "launch.checkpoint_root" in message


def test_a_truncated_model_fails_with_the_differing_file_named(tmp_path):
    handover = tmp_path / "handover"
    clear_handover(handover)
    save_as_rank_zero(handover, MODEL)
    (handover / HANDOVER_MODEL / "model.safetensors").write_bytes(b"short")
    (tmp_path / "node1").mkdir()
    with pytest.raises(HandoverError, match=r"model.safetensors has 5 bytes, .* \(truncated\)"):
        take_model(handover, tmp_path / "node1", timeout=1)


def test_rank_zero_without_a_saved_model_fails_rather_than_declare_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="without saving the model"):
        declare_complete(tmp_path)
    assert not (tmp_path / HANDOVER_COMPLETE).exists()


def test_clearing_removes_what_an_interrupted_run_left(tmp_path):
    handover = tmp_path / "handover"
    clear_handover(handover)
    save_as_rank_zero(handover, MODEL)
    mark_taken(handover, 0)
    clear_handover(handover)
    assert list(handover.iterdir()) == []
    recorded = {"files": {}}
    (handover / HANDOVER_COMPLETE).write_text(json.dumps(recorded))
    (tmp_path / "node0").mkdir()
    # A declaration without its folder is not a model.
    with pytest.raises(HandoverError, match="copying it failed"):
        take_model(handover, tmp_path / "node0", timeout=0.5)


# --- rendezvous ids --------------------------------------------------------------------------


def test_a_rendezvous_id_is_made_of_prefix_job_stage_fingerprint_and_count():
    assert rendezvous_id("llm-pipeline", "4242", "dpo", "0123abcd", 2) == (
        "llm-pipeline-4242-dpo-0123abcd-2"
    )
    assert rendezvous_id("team", None, "reward", "ff", 1) == "team-reward-ff-1"
    # Characters a path or a store key should not hold are replaced.
    assert rendezvous_id("a b", "sky/7", "sft", "ff", 1) == "a_b-sky_7-sft-ff-1"


def test_two_machines_derive_the_same_ids_and_every_launch_gets_a_new_one():
    machines = [
        placement(launch_config(nnodes=2, node_rank=rank, rdzv_endpoint="h:1")) for rank in (0, 1)
    ]
    fingerprint = "fingerprint-of-this-test"
    ids = [
        [next_rendezvous_id("p", where, stage, fingerprint) for stage in ("reward", "dpo")]
        for where in machines
    ]
    again = [next_rendezvous_id("p", where, "reward", fingerprint) for where in machines]
    assert ids[0] == ids[1]
    assert again[0] == again[1]
    assert len({*ids[0], again[0]}) == 3
    other = [next_rendezvous_id("p", where, "reward", "another-job") for where in machines]
    assert other[0] == other[1] and other[0] not in {*ids[0], again[0]}


def test_two_machines_fingerprint_a_job_alike_from_their_own_copies(tmp_path):
    """The rendezvous id holds the job's fingerprint: each machine's copy of the data and of
    the model it starts from lives elsewhere, and only their content may count."""
    fingerprints = []
    for rank in (0, 1):
        machine = tmp_path / f"machine{rank}"
        (machine / "sft_model").mkdir(parents=True)
        (machine / "sft_model" / "model.safetensors").write_bytes(b"same weights")
        (machine / "train.jsonl").write_text('{"prompt": "hi"}\n')
        config = launch_config(nnodes=2, node_rank=rank, rdzv_endpoint="h:1")
        job = {"model_dir": machine / "sft_model", "dpo": {"beta": 0.1}}
        files = {"train_file": machine / "train.jsonl"}
        fingerprints.append(job_fingerprint("llm_pipeline.training.dpo", job, files, config))
    assert fingerprints[0] == fingerprints[1]
    (tmp_path / "machine1" / "sft_model" / "model.safetensors").write_bytes(b"other weights")
    job = {"model_dir": tmp_path / "machine1" / "sft_model", "dpo": {"beta": 0.1}}
    files = {"train_file": tmp_path / "machine1" / "train.jsonl"}
    config = launch_config(nnodes=2, node_rank=1, rdzv_endpoint="h:1")
    assert job_fingerprint("llm_pipeline.training.dpo", job, files, config) != fingerprints[0]
