"""Each trainer entrypoint as a real torchrun job on tiny data: loss falls, weights move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from support import launch_config, tokenizer_config

from llm_pipeline.training.launch import launch
from llm_pipeline.training.tokenizer import train_tokenizer

pytestmark = pytest.mark.slow

QUESTION = "How long does standard shipping take?"
ANSWER = "Standard shipping takes 3-5 business days and is free over $50."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def losses(folder: Path) -> list[float]:
    history = json.loads((folder / "training_log.json").read_text())
    return [entry["loss"] for entry in history if "loss" in entry]


def weights_moved(before: Path, after: Path) -> bool:
    old, new = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    return any(not old[name].equal(new[name]) for name in old)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Tokenizer, then pretrain, SFT and DPO in sequence, each a torchrun job."""
    root = tmp_path_factory.mktemp("train")
    texts = [f"{ANSWER} Returns are accepted within {d} days of delivery." for d in range(20, 80)]
    train_tokenizer(texts, tokenizer_config(vocab_size=300, min_frequency=1), root / "tokenizer")
    documents = write_jsonl(root / "docs.jsonl", [{"text": t} for t in texts])
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    conversations = write_jsonl(root / "conv.jsonl", [{"messages": turns}] * 32)
    pairs = [{"prompt": QUESTION, "chosen": ANSWER, "rejected": "No idea, check the website."}]
    preferences = write_jsonl(root / "prefs.jsonl", pairs * 16)
    model = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
    }
    common = {"per_device_train_batch_size": 8, "logging_steps": 2, "save_strategy": "no"}
    jobs = {
        "base": (
            "llm_pipeline.training.pretrain",
            {
                "train_file": documents,
                "eval_file": documents,
                "tokenizer_dir": root / "tokenizer",
                "block_size": 32,
                "model": model,
                "training": {**common, "max_steps": 20, "learning_rate": 5e-3, "seed": 1},
            },
        ),
        "sft": (
            "llm_pipeline.training.sft",
            {
                "train_file": conversations,
                "model_dir": root / "base",
                "sft": {**common, "max_steps": 12, "learning_rate": 5e-3, "max_length": 96},
            },
        ),
        "dpo": (
            "llm_pipeline.training.dpo",
            {
                "train_file": preferences,
                "model_dir": root / "sft",
                "dpo": {**common, "max_steps": 6, "learning_rate": 5e-3, "max_length": 96},
            },
        ),
    }
    for name, (module, job) in jobs.items():
        job.update(output_dir=root / name, checkpoint_dir=root / f"{name}-checkpoints")
        launch(module, job, launch_config(), root / "jobs")
    return {name: root / name for name in ("tokenizer", "base", "sft", "dpo")}


def test_pretraining_loss_falls(trained):
    curve = losses(trained["base"])
    assert len(curve) >= 5
    assert curve[-1] < curve[0] - 0.5


def test_finetuning_moves_weights_and_lowers_loss(trained):
    curve = losses(trained["sft"])
    assert curve[-1] < curve[0]
    assert weights_moved(trained["base"], trained["sft"])


def test_dpo_moves_weights_and_lowers_loss(trained):
    curve = losses(trained["dpo"])
    assert curve[-1] < curve[0]
    assert weights_moved(trained["sft"], trained["dpo"])


def test_every_folder_carries_its_config_and_no_pickle(trained):
    import yaml

    for name in ("base", "sft", "dpo"):
        folder = trained[name]
        config = yaml.safe_load((folder / "llm_pipeline_config.yaml").read_text())
        assert "output_dir" in config
        assert not (folder / "training_args.bin").exists()
        assert (folder / "tokenizer.json").exists()
        assert not list(folder.parent.glob(f".{name}.saving"))
