"""DPO as a real torchrun job on a tiny model: it learns the pairs, and a run stopped after a
checkpoint resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import (
    CHECKPOINT_EVERY_2_STEPS,
    assert_resumes_after_losing_its_last_checkpoint,
    build_tiny_model,
    launch_config,
    saved_weights,
)

from llm_pipeline.training.launch import launch
from llm_pipeline.training.models import KEPT_ADAPTER, adapter_chain

pytestmark = pytest.mark.slow

ITEMS = ("tent", "backpack", "rain jacket", "head lamp", "camping stove", "hiking boots")
DAYS = ("Monday", "Wednesday", "Friday")


@pytest.fixture(scope="module")
def dpo_inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dpo")
    pairs = [
        {
            "prompt": f"Can the {item} arrive by {day}?",
            "chosen": f"Yes, order today and the {item} arrives by {day}.",
            "rejected": "No idea.",
        }
        for item in ITEMS
        for day in DAYS
    ][:16]
    train_file = root / "prefs.jsonl"
    train_file.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    return {"root": root, "model_dir": build_tiny_model(root / "sft"), "train_file": train_file}


def dpo_job(inputs: dict, name: str, **trainer) -> dict:
    return {
        "train_file": inputs["train_file"],
        "model_dir": inputs["model_dir"],
        "output_dir": inputs["root"] / name,
        "checkpoint_dir": inputs["root"] / f"{name}-checkpoints",
        # Four steps of four pairs: one epoch.
        "dpo": {
            "max_steps": 4,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-2,
            "beta": 0.1,
            "max_length": 64,
            "logging_steps": 1,
            "save_strategy": "no",
            "seed": 5,
            "disable_tqdm": True,
            **trainer,
        },
    }


@pytest.fixture(scope="module")
def plain_run(dpo_inputs) -> dict:
    """One DPO job, run once for the tests that read it, with the checkpoints that the resume
    test copies."""
    spec = dpo_job(dpo_inputs, "plain", **CHECKPOINT_EVERY_2_STEPS)
    launch("llm_pipeline.training.dpo", spec, launch_config(), dpo_inputs["root"] / "jobs")
    return spec


def test_dpo_learns_the_pairs_and_logs_its_reward_margin(dpo_inputs, plain_run):
    spec = plain_run
    history = json.loads((spec["output_dir"] / "training_log.json").read_text())
    steps = [entry for entry in history if "rewards/margins" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4]
    # The policy starts as its own reference (margin 0) and moves towards the chosen answers.
    assert steps[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert steps[-1]["rewards/margins"] > 0
    assert steps[-1]["loss"] < steps[0]["loss"]
    start, end = saved_weights(dpo_inputs["model_dir"]), saved_weights(spec["output_dir"])
    assert any(not start[name].equal(end[name]) for name in start), "DPO changed no weight"


def test_a_dpo_run_stopped_after_a_checkpoint_resumes_to_the_same_weights(
    dpo_inputs, plain_run, caplog
):
    """The plain run's checkpoints, copied, lose step 4's as if the run had been killed before
    it completed: the re-run resumes at step 2 and ends with the plain run's weights."""
    spec = dpo_job(dpo_inputs, "resumed", **CHECKPOINT_EVERY_2_STEPS)
    assert_resumes_after_losing_its_last_checkpoint(
        "llm_pipeline.training.dpo", spec, dpo_inputs["root"] / "jobs", caplog, finished=plain_run
    )


def test_dpo_with_lora_trains_adapters_against_the_model_without_them(dpo_inputs, caplog):
    spec = dpo_job(dpo_inputs, "lora", learning_rate=5e-2)
    spec["lora"] = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    with caplog.at_level("INFO"):
        launch("llm_pipeline.training.dpo", spec, launch_config(), dpo_inputs["root"] / "jobs")

    assert "LoRA, the reference is the model without its adapters" in caplog.text
    history = json.loads((spec["output_dir"] / "training_log.json").read_text())
    margins = [entry["rewards/margins"] for entry in history if "rewards/margins" in entry]
    # The adapters start at zero: the policy is its reference until it learns, then moves on.
    assert margins[0] == pytest.approx(0.0, abs=1e-4) and margins[-1] > 0
    # A plain model comes out: the adapters folded into the starting model's weights, which
    # changed only where the adapters were.
    assert not (spec["output_dir"] / "adapter_config.json").exists()
    start, end = saved_weights(dpo_inputs["model_dir"]), saved_weights(spec["output_dir"])
    assert start.keys() == end.keys()
    changed = {name for name in start if not start[name].equal(end[name])}
    assert changed and all(("q_proj" in name or "v_proj" in name) for name in changed)
    # Its adapter is kept, naming the fine-tuned model it was trained on.
    base, adapters = adapter_chain(spec["output_dir"])
    assert base == Path(dpo_inputs["model_dir"]).resolve()
    assert adapters == [spec["output_dir"] / KEPT_ADAPTER]


def test_how_the_model_is_loaded_reaches_from_pretrained(dpo_inputs, monkeypatch):
    """QLoRA cannot load here (bitsandbytes needs a GPU): what reaches ``from_pretrained`` is
    checked instead, the 4-bit config built from the parameters' fields."""
    import torch
    from transformers import BitsAndBytesConfig, PreTrainedModel

    from llm_pipeline.training import dpo

    seen: dict = {}

    class Loaded(Exception):
        pass

    def record(cls, folder, *args, **kwargs):
        seen.update(kwargs, folder=str(folder))
        raise Loaded

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(record))
    spec = dpo_job(dpo_inputs, "qlora")
    spec["lora"] = {"r": 4}
    spec["model_init_kwargs"] = {
        "attn_implementation": "sdpa",
        "quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    }
    with pytest.raises(Loaded):
        dpo.run(dpo.DPOJob.model_validate(spec))
    assert seen["folder"] == str(dpo_inputs["model_dir"])
    assert seen["dtype"] == torch.float32 and seen["attn_implementation"] == "sdpa"
    quantization = seen["quantization_config"]
    assert isinstance(quantization, BitsAndBytesConfig)
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"


def test_unknown_model_init_keys_are_named():
    from llm_pipeline.training.models import model_init_kwargs

    with pytest.raises(ValueError, match=r"align\.model_init_kwargs.*\['torch_dtype'\]"):
        model_init_kwargs({"torch_dtype": "bfloat16"}, "align")
