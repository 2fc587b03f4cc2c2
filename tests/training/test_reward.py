"""The reward model: pairwise accuracy, and a real torchrun job that learns an easy preference
well above chance on held-out pairs and saves a plain Hugging Face folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from support import ITEMS, build_tiny_model, launch_config

from llm_pipeline.settings import CONFIG_LOADER_ARGS
from llm_pipeline.training.jobs import checked_fields
from llm_pipeline.training.launch import launch
from llm_pipeline.training.reward import (
    REWARD_METRICS_FILE,
    pairwise_accuracy,
    score_conversations,
    starting_weights,
)

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_pairwise_accuracy_counts_ties_as_misses():
    assert pairwise_accuracy([1.0, 2.0, 0.0, 5.0], [0.0, 2.0, 1.0, 4.0]) == 0.5
    with pytest.raises(ValueError, match="No preference pairs"):
        pairwise_accuracy([], [])


def test_a_soft_prompts_reward_model_starts_from_the_model_under_the_prompt(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    adapter = tmp_path / "soft_prompt"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert starting_weights(adapter) == str(base)
    assert starting_weights(base) == str(base)


@pytest.mark.parametrize("env", ["local", "tiny"])
def test_the_reward_parameters_are_a_valid_reward_config(env, tmp_path):
    from trl import RewardConfig

    loader = OmegaConfigLoader(str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    fields = checked_fields(RewardConfig, loader["parameters"]["align"]["reward"], "reward")
    RewardConfig(output_dir=str(tmp_path), bf16=False, **fields)


def easy_pairs(items: tuple[str, ...], start: int) -> list[dict[str, str]]:
    """A polite, on-topic answer preferred to a curt refusal: easy to learn."""
    return [
        {
            "prompt": f"When does my {item} order number {start + n} arrive?",
            "chosen": f"Your {item} arrives within 3 days. Thank you for shopping with us!",
            "rejected": "No idea.",
        }
        for n, item in enumerate(items * 4)
    ]


LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}


@pytest.fixture(scope="module", params=[None, LORA], ids=["every_weight", "lora"])
def reward_model(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reward")
    start = build_tiny_model(root / "sft")
    train, heldout = easy_pairs(ITEMS[:4], 0), easy_pairs(ITEMS[4:], 100)
    files = {}
    for name, rows in {"train_file": train, "eval_file": heldout}.items():
        files[name] = root / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    job = {
        **files,
        "model_dir": start,
        "output_dir": root / "reward_model",
        "checkpoint_dir": root / "checkpoints",
        "reward": {
            "max_steps": 12,
            "per_device_train_batch_size": 8,
            "learning_rate": 5e-3,
            "logging_steps": 4,
            "activation_checkpointing": False,
            "save_strategy": "no",
            "seed": 5,
            "disable_tqdm": True,
        },
        "lora": request.param,
    }
    launch("llm_pipeline.training.reward", job, launch_config(), root / "jobs")
    return root / "reward_model"


@pytest.mark.slow
def test_the_reward_model_ranks_held_out_pairs_well_above_chance(reward_model):
    metrics = json.loads((reward_model / REWARD_METRICS_FILE).read_text())
    assert metrics["heldout_pairs"] == 8
    assert metrics["train_pairs"] == 16
    assert metrics["heldout_accuracy"] >= 0.875
    assert metrics["heldout_margin"] > 0
    history = json.loads((reward_model / "training_log.json").read_text())
    logged = [entry for entry in history if "heldout_accuracy" in entry]
    assert logged and logged[0]["heldout_accuracy"] == metrics["heldout_accuracy"]


@pytest.mark.slow
def test_the_reward_model_is_a_plain_folder_that_scores_as_it_was_measured(reward_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(reward_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    assert model.config.num_labels == 1
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert not (reward_model / "training_args.bin").exists()
    prompt = [{"role": "user", "content": "When does my tent order number 7 arrive?"}]
    good = [*prompt, {"role": "assistant", "content": "Your tent arrives within 3 days."}]
    bad = [*prompt, {"role": "assistant", "content": "No idea."}]
    # Scored one at a time and padded together: the head reads the last real token either way.
    alone = [score_conversations(model, tokenizer, [c])[0] for c in (good, bad)]
    together = score_conversations(model, tokenizer, [good, bad])
    assert together == pytest.approx(alone, abs=1e-4)
    assert together[0] > together[1]


@pytest.mark.slow
@pytest.mark.parametrize("reward_model", [LORA], ids=["lora"], indirect=True)
def test_a_lora_reward_model_trains_adapters_and_head_then_folds_them_into_its_start(
    reward_model,
):
    """With ``align.reward_lora`` only the adapted projections and the head moved: the folded
    folder keeps the starting model's embeddings and norms, its adapted weights differ, and it
    ranks the held-out pairs as the trainer measured them (the head came along)."""
    from safetensors.torch import load_file

    from llm_pipeline.training.dpo import read_preference_pairs
    from llm_pipeline.training.models import KEPT_ADAPTER
    from llm_pipeline.training.reward import heldout_metrics

    kept = reward_model / KEPT_ADAPTER / "adapter_config.json"
    assert json.loads(kept.read_text())["task_type"] == "SEQ_CLS"
    start = load_file(reward_model.parent / "sft" / "model.safetensors")
    folded = load_file(reward_model / "model.safetensors")
    assert "score.weight" in folded
    unchanged = [name for name in folded if "norm" in name or "embed" in name]
    assert unchanged and all((folded[n] == start[n]).all() for n in unchanged)
    adapted = [n for n in folded if n.endswith("q_proj.weight") and n in start]
    assert adapted and all(not (folded[n] == start[n]).all() for n in adapted)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(reward_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    heldout = read_preference_pairs(reward_model.parent / "eval_file.jsonl")
    recorded = json.loads((reward_model / REWARD_METRICS_FILE).read_text())
    found = heldout_metrics(model, tokenizer, heldout)
    assert found["heldout_accuracy"] == recorded["heldout_accuracy"]
    assert found["heldout_margin"] == pytest.approx(recorded["heldout_margin"], abs=1e-3)
