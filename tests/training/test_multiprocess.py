"""Data parallelism: two torchrun processes train the same model as one process would."""

from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file
from support import free_port, launch_config, shop_sentences, tokenizer_config, training_losses

from llm_pipeline.training.launch import TrainingLaunchError, launch
from llm_pipeline.training.tokenizer import train_tokenizer

pytestmark = pytest.mark.slow

# Two ranks each reduce half the batch in another order than one process reducing all of it:
# float32 rounding, nothing more, separates the two runs.
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-6


def pretrain(root: Path, name: str, processes: int, batch: int, nodes: int = 1) -> Path:
    """A pretraining run of a tiny Llama with ``processes`` ranks of ``batch`` blocks each on
    each of ``nodes`` launchers, which meet at a c10d rendezvous on localhost as machines do."""
    texts = shop_sentences() * 2
    if not (root / "tokenizer").exists():
        train_tokenizer(
            texts, tokenizer_config(vocab_size=300, min_frequency=1), root / "tokenizer"
        )
        (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    job = {
        "train_file": root / "docs.jsonl",
        "tokenizer_dir": root / "tokenizer",
        "output_dir": root / name,
        "checkpoint_dir": root / f"{name}-checkpoints",
        "block_size": 32,
        "model": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 64,
        },
        "training": {
            "per_device_train_batch_size": batch,
            "max_steps": 8,
            "learning_rate": 3e-3,
            "logging_steps": 1,
            "save_strategy": "no",
            "seed": 5,
            "data_seed": 5,
            "disable_tqdm": True,
        },
    }
    if nodes == 1:
        launch("llm_pipeline.training.pretrain", job, launch_config(nproc_per_node=processes), root)
        return root / name
    endpoint = f"127.0.0.1:{free_port()}"
    configs = [
        launch_config(
            nproc_per_node=processes,
            nnodes=nodes,
            node_rank=rank,
            rdzv_endpoint=endpoint,
            rdzv_id=name,
        )
        for rank in range(nodes)
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=nodes) as pool:
        launched = [
            pool.submit(launch, "llm_pipeline.training.pretrain", job, config, root / f"{name}{i}")
            for i, config in enumerate(configs)
        ]
        for future in launched:
            future.result(timeout=600)
    return root / name


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "training_log.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two ranks of 4 blocks each on one node and on two nodes, and one rank of 8: the same
    global batch."""
    root = tmp_path_factory.mktemp("ranks")
    return {
        "two": pretrain(root, "two", processes=2, batch=4),
        "one": pretrain(root, "one", processes=1, batch=8),
        "two_nodes": pretrain(root, "two_nodes", processes=1, batch=4, nodes=2),
    }


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    two, one = runs["two"], runs["one"]

    losses_two, losses_one = training_losses(two), training_losses(one)
    assert len(losses_two) == len(losses_one) == 8
    assert losses_one[-1] < losses_one[0]
    assert losses_two == pytest.approx(losses_one, abs=LOSS_TOLERANCE)

    weights_two, weights_one = (
        load_file(two / "model.safetensors"),
        load_file(one / "model.safetensors"),
    )
    for name, tensor in weights_one.items():
        assert weights_two[name].allclose(tensor, rtol=0, atol=WEIGHT_TOLERANCE), name


def test_two_nodes_of_one_process_train_as_one_node_of_two(runs):
    two_nodes, two = runs["two_nodes"], runs["two"]

    losses = [training_losses(run) for run in (two_nodes, two)]
    assert len(losses[0]) == 8
    assert losses[0] == pytest.approx(losses[1], abs=LOSS_TOLERANCE)
    weights_nodes, weights_two = (
        load_file(two_nodes / "model.safetensors"),
        load_file(two / "model.safetensors"),
    )
    for name, tensor in weights_two.items():
        assert weights_nodes[name].allclose(tensor, rtol=0, atol=WEIGHT_TOLERANCE), name


def test_every_rank_ends_with_the_same_weights_and_rank_zero_records_them(runs):
    digests = next(
        entry["parameter_sha256"] for entry in history(runs["two"]) if "parameter_sha256" in entry
    )
    assert len(digests) == 2
    assert digests[0] == digests[1]


# Each rank seeds its model differently, as a replica that drifted would be; main is decorated
# as in the entrypoints, so that the error reaches the launcher through torch's error file.
DRIFTED_REPLICAS = """
from types import SimpleNamespace
import torch
import torch.distributed as dist
from llm_pipeline.training.checkpoints import SameWeightsOnEveryRank
from llm_pipeline.training.jobs import record_errors

@record_errors
def main():
    dist.init_process_group("gloo")
    torch.manual_seed(dist.get_rank())
    model = torch.nn.Linear(4, 4)
    args = SimpleNamespace(fsdp=None, deepspeed=None)
    rank_zero = dist.get_rank() == 0
    state = SimpleNamespace(is_world_process_zero=rank_zero, global_step=3, log_history=[])
    SameWeightsOnEveryRank().on_train_end(args, state, None, model=model)

main()
"""


def test_ranks_that_end_with_different_weights_fail_the_run(tmp_path, monkeypatch):
    (tmp_path / "drifted_replicas.py").write_text(DRIFTED_REPLICAS)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    with pytest.raises(TrainingLaunchError) as error:
        launch("drifted_replicas", {}, launch_config(nproc_per_node=2), tmp_path)
    assert "Ranks [1] ended with weights different from rank 0's" in str(error.value)
