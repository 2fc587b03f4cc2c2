"""The same seed and data give the same metrics and weights on CPU, run to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import launch_config, shop_sentences, tokenizer_config

from llm_pipeline.training.launch import launch
from llm_pipeline.training.tokenizer import train_tokenizer

pytestmark = pytest.mark.slow


def pretrain(root: Path, name: str) -> list[dict]:
    """The training log of a pretraining run with a fixed seed, dropout and shuffled data."""
    job = {
        "train_file": root / "docs.jsonl",
        "eval_file": root / "docs.jsonl",
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
            "attention_dropout": 0.1,
        },
        "training": {
            "per_device_train_batch_size": 4,
            "max_steps": 8,
            "learning_rate": 3e-3,
            "logging_steps": 1,
            "eval_strategy": "steps",
            "eval_steps": 4,
            "save_strategy": "no",
            "seed": 11,
            "data_seed": 11,
            "disable_tqdm": True,
        },
    }
    launch("llm_pipeline.training.pretrain", job, launch_config(), root)
    return json.loads((root / name / "training_log.json").read_text())


def metrics(log: list[dict]) -> list[dict]:
    """Every logged number that depends on the model, not on the clock."""
    kept = ("loss", "grad_norm", "learning_rate", "eval_loss", "parameter_sha256", "step")
    return [{key: value for key, value in entry.items() if key in kept} for entry in log]


def test_same_seed_and_data_give_the_same_metrics_run_to_run(tmp_path):
    texts = shop_sentences() * 2
    train_tokenizer(
        texts, tokenizer_config(vocab_size=300, min_frequency=1), tmp_path / "tokenizer"
    )
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))

    first, second = metrics(pretrain(tmp_path, "first")), metrics(pretrain(tmp_path, "second"))
    assert sum("eval_loss" in entry for entry in first) == 2
    assert sum("loss" in entry for entry in first) == 8
    assert any("parameter_sha256" in entry for entry in first)
    assert first == second
