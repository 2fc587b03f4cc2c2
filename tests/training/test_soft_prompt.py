"""A soft prompt aligned with DPO stays a soft prompt; merged, it is a plain model folder."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from support import build_tiny_model

from llm_pipeline.training import dpo
from llm_pipeline.training.models import is_adapter_folder, load_causal_lm, merge_soft_prompt

MESSAGES = [{"role": "user", "content": "How long does standard shipping take?"}]


@pytest.fixture
def soft_prompt(tmp_path):
    """A fresh soft prompt of 4 virtual tokens on a tiny base model, saved as PEFT saves it."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = build_tiny_model(tmp_path / "base")
    torch.manual_seed(0)
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    model.save_pretrained(tmp_path / "prompt")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "prompt")
    return base, tmp_path / "prompt"


def test_dpo_trains_only_the_soft_prompt_and_saves_a_soft_prompt(soft_prompt, tmp_path):
    base, prompt = soft_prompt
    pairs = [
        {"prompt": f"Where is order {i}?", "chosen": "It ships today.", "rejected": "No idea."}
        for i in range(16)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    job = dpo.DPOJob(
        train_file=tmp_path / "pairs.jsonl",
        model_dir=prompt,
        output_dir=tmp_path / "aligned",
        checkpoint_dir=tmp_path / "checkpoints",
        dpo={"max_steps": 4, "per_device_train_batch_size": 8, "learning_rate": 0.1,
             "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True},
        # As the align stage passes them (conf/base): fp32, the library's attention.
        model_init_kwargs={"dtype": "float32", "attn_implementation": None,
                           "quantization_config": None},
    )  # fmt: skip
    base_weights = load_file(base / "model.safetensors")
    dpo.run(job)

    aligned = tmp_path / "aligned"
    assert is_adapter_folder(aligned) and not (aligned / "ref").exists()
    before = load_file(prompt / "adapter_model.safetensors")
    after = load_file(aligned / "adapter_model.safetensors")
    assert set(before) == set(after) and not all(before[k].equal(after[k]) for k in before)
    for name, tensor in load_file(base / "model.safetensors").items():
        assert tensor.equal(base_weights[name]), name  # the base model stayed frozen
    history = json.loads((aligned / "training_log.json").read_text())
    margins = [entry["rewards/margins"] for entry in history if "rewards/margins" in entry]
    assert len(margins) == 4 and margins[-1] > 0


def test_a_merged_soft_prompt_gives_the_same_logits_without_peft(soft_prompt, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, prompt = soft_prompt
    with torch.no_grad():  # a soft prompt away from its random start
        trained = load_causal_lm(prompt)
        trained.prompt_encoder["default"].embedding.weight.normal_(0, 0.5)
        trained.save_pretrained(tmp_path / "trained")
    AutoTokenizer.from_pretrained(prompt).save_pretrained(tmp_path / "trained")
    merged = merge_soft_prompt(tmp_path / "trained", tmp_path / "merged")
    assert not is_adapter_folder(merged) and (merged / "model.safetensors").exists()

    tokenizer = AutoTokenizer.from_pretrained(prompt)
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids
    merged_tokenizer = AutoTokenizer.from_pretrained(merged)
    merged_text = merged_tokenizer.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    merged_ids = merged_tokenizer(merged_text, return_tensors="pt").input_ids
    assert merged_ids.shape[1] == ids.shape[1] + 4
    with torch.no_grad():
        expected = load_causal_lm(tmp_path / "trained").eval()(input_ids=ids).logits
        model = AutoModelForCausalLM.from_pretrained(merged).eval()
        got = model(input_ids=merged_ids).logits
    vocabulary = expected.shape[-1]
    torch.testing.assert_close(got[:, 4:, :vocabulary], expected[:, -ids.shape[1] :])
    generated = model.generate(merged_ids, max_new_tokens=6, do_sample=False)
    assert not set(generated[0, merged_ids.shape[1] :].tolist()) & set(range(vocabulary, 10**6))
