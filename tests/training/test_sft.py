"""Fine-tuning methods through the sft entrypoint, and the batches the SFT trainer builds."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from support import PROJECT_ROOT, build_tiny_model, launch_config, training_losses

from llm_pipeline.training.launch import launch
from llm_pipeline.training.models import (
    KEPT_ADAPTER,
    adapter_chain,
    is_adapter_folder,
    load_causal_lm,
)
from llm_pipeline.training.sft import SFTJob, peft_config, read_conversations, sft_arguments

QUESTION = "How long does standard shipping take?"
ANSWER = "Standard shipping takes 3-5 business days."
END = "<|im_end|>"


def conversations(path: Path, count: int = 24) -> Path:
    """``count`` two-turn chats whose user turns differ in length, as JSON Lines."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{QUESTION} Order {'1' * (1 + i % 7)}."},
                {"role": "assistant", "content": ANSWER},
            ]
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def default_sft_section() -> dict:
    """``finetune.sft`` as conf/base ships it."""
    text = (PROJECT_ROOT / "conf/base/parameters_finetune.yml").read_text()
    return yaml.safe_load(text)["finetune"]["sft"]


def labelled_runs(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """The stretches of consecutive tokens that carry a label."""
    runs, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return [*runs, current] if current else runs


def test_the_default_batches_train_on_assistant_turns_only(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    train_file = conversations(tmp_path / "conv.jsonl")
    job = SFTJob(
        train_file=train_file,
        model_dir=tiny_model_dir,
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ck",
        sft={**default_sft_section(), "max_length": 128, "per_device_train_batch_size": 4},
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(output_dir=str(job.checkpoint_dir), report_to="none", **sft_arguments(job)),
        train_dataset=read_conversations(train_file),
        eval_dataset=read_conversations(train_file),
        processing_class=tokenizer,
    )
    batches = list(trainer.get_train_dataloader())
    conversations_seen = 0
    for batch in batches:
        # Packed and padding-free: one row of several conversations, told apart by positions.
        assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
        starts = int((batch["position_ids"][0] == 0).sum())
        assert starts > 1
        runs = labelled_runs(batch["input_ids"][0].tolist(), batch["labels"][0].tolist())
        assert [tokenizer.decode(run) for run in runs] == [ANSWER + END] * starts
        conversations_seen += starts
    assert conversations_seen == 24


def weights_differ(before: dict, after: dict) -> list[str]:
    return sorted(name for name in before if not before[name].equal(after[name]))


class LaunchLines(logging.Handler):
    """The launcher's log lines (a job's output) while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_sft(root: Path, base: Path, method: str, **sections) -> tuple[Path, int, list[str]]:
    """One sft job under torchrun; its output folder, the trainable count it logged and the
    launcher's lines."""
    job = {
        "train_file": conversations(root / "conv.jsonl"),
        "model_dir": base,
        "output_dir": root / method,
        "checkpoint_dir": root / f"{method}-checkpoints",
        "method": method,
        "sft": {
            "max_steps": 6,
            "per_device_train_batch_size": 8,
            "max_length": 96,
            "logging_steps": 2,
            "save_strategy": "no",
            "seed": 3,
            **sections.pop("sft", {}),
        },
        **sections,
    }
    logger = logging.getLogger("llm_pipeline.training.launch")
    handler, level = LaunchLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        launch("llm_pipeline.training.sft", job, launch_config(), root / "jobs")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    logged = [line for line in handler.lines if "Trainable parameters:" in line]
    assert len(logged) == 1, logged
    trainable = int(logged[0].split("Trainable parameters: ")[1].split()[0])
    return root / method, trainable, handler.lines


# LoRA on q_proj and v_proj of the tiny model, a checkpoint every 2 of 6 steps.
LORA = {
    "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "sft": {"learning_rate": 5e-2, "save_strategy": "steps", "save_steps": 2},
}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> tuple[Path, Path, Path, int]:
    """One whole LoRA run (its base, its folder with the job's files and checkpoints, its
    output and trainable count): read by the merged-weights test, copied by the resume test."""
    root = tmp_path_factory.mktemp("lora")
    base = build_tiny_model(root / "base")
    run = root / "run"
    run.mkdir()
    folder, trainable, _ = run_sft(run, base, "lora", **copy.deepcopy(LORA))
    return base, run, folder, trainable


def peft_trainable_count(base: Path, job_sections: dict, method: str) -> int:
    """What PEFT itself counts as trainable for this config on this base model."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    job = SFTJob(
        train_file=base, model_dir=base, output_dir=base, checkpoint_dir=base, method=method,
        **job_sections,
    )  # fmt: skip
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), peft_config(job))
    return model.get_nb_trainable_parameters()[0]


def generates(folder: Path) -> bool:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_causal_lm(folder).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, return_dict=True,
        return_tensors="pt",
    )  # fmt: skip
    output = model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    return output.shape[1] == prompt["input_ids"].shape[1] + 4


@pytest.mark.slow
def test_lora_trains_adapters_and_saves_them_merged(lora_run):
    base, _, folder, trainable = lora_run

    # r x (in + out) for q_proj and v_proj of one layer of hidden size 32: 2 x 4 x 64.
    lora = {"lora": LORA["lora"]}
    assert trainable == peft_trainable_count(base, lora, "lora") == 512
    assert not is_adapter_folder(folder)
    before = load_file(base / "model.safetensors")
    after = load_file(folder / "model.safetensors")
    assert set(after) == set(before)
    assert weights_differ(before, after) == [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
    ]
    assert generates(folder)
    # The adapters learnt: the loss fell (the end-to-end LoRA runs are the smollm2 env's test).
    curve = training_losses(folder)
    assert len(curve) >= 3 and curve[-1] < curve[0], curve
    # The adapter stays beside the weights, naming the starting model: the registry can
    # register it alone over that base (register.weights: adapters).
    assert adapter_chain(folder) == (base.resolve(), [folder / KEPT_ADAPTER])


@pytest.mark.slow
def test_prompt_tuning_trains_a_soft_prompt_on_a_frozen_model(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    sections = {
        "prompt_tuning": {
            "num_virtual_tokens": 6,
            "prompt_tuning_init": "TEXT",
            "prompt_tuning_init_text": "Answer the shop question",
            "tokenizer_name_or_path": str(base),
        }
    }
    start = peft_trainable_count(base, sections, "prompt_tuning")
    folder, trainable, _ = run_sft(
        tmp_path, base, "prompt_tuning", sft={"learning_rate": 0.3, "packing": True},
        **sections,
    )  # fmt: skip

    assert trainable == start == 6 * 32
    assert is_adapter_folder(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base.resolve())
    soft_prompt = load_file(folder / "adapter_model.safetensors")
    assert [tensor.numel() for tensor in soft_prompt.values()] == [trainable]

    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    job = SFTJob(
        train_file=base, model_dir=base, output_dir=base, checkpoint_dir=base,
        method="prompt_tuning", **sections,
    )  # fmt: skip
    initial = get_peft_model(AutoModelForCausalLM.from_pretrained(base), peft_config(job))
    initial_prompt = initial.prompt_encoder["default"].embedding.weight
    assert not next(iter(soft_prompt.values())).equal(initial_prompt)

    loaded = load_causal_lm(folder)
    base_weights = load_file(base / "model.safetensors")
    for name, tensor in loaded.get_base_model().state_dict().items():
        assert tensor.equal(base_weights[name]), name
    assert generates(folder)


def test_an_adapter_whose_base_model_is_gone_says_so(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    gone = tmp_path / "moved-away"
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(gone)}))
    with pytest.raises(FileNotFoundError, match="moved-away, which is no longer there"):
        load_causal_lm(folder)


def test_method_sections_are_checked_against_peft(tmp_path):
    job = SFTJob(
        train_file=tmp_path, model_dir=tmp_path, output_dir=tmp_path, checkpoint_dir=tmp_path,
        method="lora", lora={"rank": 8},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"Unknown keys under 'lora': \['rank'\]"):
        peft_config(job)
    job.lora = {"task_type": "SEQ_CLS"}
    with pytest.raises(ValueError, match=r"lora\.task_type"):
        peft_config(job)


def test_prompt_tuning_turns_packing_off(tmp_path):
    job = SFTJob(
        train_file=tmp_path, model_dir=tmp_path, output_dir=tmp_path, checkpoint_dir=tmp_path,
        method="prompt_tuning", sft={"packing": True, "max_length": 64},
    )  # fmt: skip
    assert sft_arguments(job)["packing"] is False
    job.method = "lora"
    assert sft_arguments(job)["packing"] is True


@pytest.mark.slow
def test_lora_fine_tuning_stopped_after_a_checkpoint_resumes_to_the_same_weights(
    lora_run, tmp_path
):
    base, whole_run, whole, _ = lora_run
    before = load_file(whole / "model.safetensors")
    # As if killed after step 2: the later checkpoints and the output were never written.
    run = shutil.copytree(whole_run, tmp_path / "run")
    checkpoints = run / "lora-checkpoints"
    for step in (4, 6):
        shutil.rmtree(checkpoints / f"checkpoint-{step}")
    shutil.rmtree(run / "lora")
    resumed, _, lines = run_sft(run, base, "lora", **copy.deepcopy(LORA))
    text = "\n".join(lines)
    assert "Resuming from" in text and "(step 2)" in text
    after = load_file(resumed / "model.safetensors")
    assert weights_differ(load_file(base / "model.safetensors"), after)
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
