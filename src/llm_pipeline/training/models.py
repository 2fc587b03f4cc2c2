"""Loading a model folder, whatever fine-tuning method made it.

``full`` and ``lora`` fine-tuning save a plain Hugging Face folder (LoRA is merged into the base
weights). ``prompt_tuning`` saves a PEFT adapter folder: the soft prompt, the tokenizer and, in
``adapter_config.json``, the base model it was trained on (an absolute path or a hub id), which
must still be there to load it. Every stage loads a model folder through ``load_causal_lm``.
DPO trains a soft prompt further as a soft prompt; evaluate scores it; the registry logs it
through ``merge_soft_prompt``, as a plain folder that needs neither PEFT nor the base folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ADAPTER_CONFIG_FILE = "adapter_config.json"


def is_adapter_folder(folder: Path | str) -> bool:
    """True for a PEFT adapter folder (a soft prompt on top of a base model)."""
    return (Path(folder) / ADAPTER_CONFIG_FILE).exists()


def adapter_base_model(folder: Path | str) -> str:
    """The base model a PEFT adapter folder was trained on, as its adapter config records it."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{folder}/{ADAPTER_CONFIG_FILE} does not name its base model.")
    if Path(base).is_absolute() and not (Path(base) / "config.json").exists():
        raise FileNotFoundError(
            f"The adapter in {folder} was trained on the base model {base}, which is no longer "
            "there: restore that folder, or fine-tune again."
        )
    return base


def load_causal_lm(folder: Path | str, trainable: bool = False) -> Any:
    """The causal language model in ``folder``; an adapter folder comes with its base model,
    its adapter ``trainable`` or frozen."""
    from transformers import AutoModelForCausalLM

    if not is_adapter_folder(folder):
        return AutoModelForCausalLM.from_pretrained(str(folder))
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(adapter_base_model(folder))
    model = PeftModel.from_pretrained(base, str(folder))
    if trainable:
        # PEFT refuses ``is_trainable`` for a saved soft prompt; its embedding is the one part
        # that trains, the base model stays frozen either way.
        for parameter in model.prompt_encoder.parameters():
            parameter.requires_grad_(True)
    return model


SOFT_PROMPT_TOKEN = "<|soft_prompt_{}|>"


def merge_soft_prompt(folder: Path | str, output_dir: Path | str) -> Path:
    """A plain model folder that computes what the soft prompt in ``folder`` computes.

    PEFT puts the learned vectors before every input, at positions 0..N-1. Here they become the
    embeddings of N new special tokens that the chat template writes first: the same inputs at
    the same positions, in a folder that loads without PEFT or the base model's folder (the
    registry, serving). Generation never emits the new tokens (``suppress_tokens``).
    """
    from transformers import AutoTokenizer

    model = load_causal_lm(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    vectors = model.get_prompt_embedding_to_save("default").detach()
    base = model.get_base_model()
    tokens = [SOFT_PROMPT_TOKEN.format(i) for i in range(len(vectors))]
    tokenizer.add_special_tokens({"additional_special_tokens": tokens})
    ids = tokenizer.convert_tokens_to_ids(tokens)
    base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    base.get_input_embeddings().weight.data[ids] = vectors.to(base.dtype)
    base.generation_config.suppress_tokens = ids
    tokenizer.chat_template = "{{- '" + "".join(tokens) + "' -}}\n" + tokenizer.chat_template
    output_dir = Path(output_dir)
    base.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
