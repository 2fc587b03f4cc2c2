"""LoRA adapters folded into a starting model loaded anew: what a model trained sharded or in
4 bits hands on, the same weights as folding the adapters into the model in memory."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from support import build_tiny_model
from transformers import AutoModelForCausalLM

from llm_pipeline.training.models import (
    KEPT_ADAPTER,
    adapter_chain,
    is_adapter_folder,
    merge_adapter_folder,
)


def test_merging_a_saved_adapter_gives_the_weights_of_merging_in_memory(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(0)
    with torch.no_grad():  # trained adapters: B is no longer zero
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    folder = tmp_path / "output"
    model.save_pretrained(folder)
    in_memory = {name: t.clone() for name, t in model.merge_and_unload().state_dict().items()}

    merge_adapter_folder(folder, base)

    assert not is_adapter_folder(folder)
    # The adapter stays beside the weights, naming the folder it was trained on.
    assert adapter_chain(folder) == (base, [folder / KEPT_ADAPTER])
    merged = load_file(folder / "model.safetensors")
    assert set(merged) <= set(in_memory)
    assert [name for name in merged if not merged[name].equal(in_memory[name])] == []
    start = load_file(base / "model.safetensors")
    assert not merged["model.layers.0.self_attn.q_proj.weight"].equal(
        start["model.layers.0.self_attn.q_proj.weight"]
    )
