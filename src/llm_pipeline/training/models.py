"""Loading a model folder, whatever fine-tuning method made it.

``full`` and ``lora`` fine-tuning save a plain Hugging Face folder (LoRA is merged into the base
weights). ``prompt_tuning`` saves a PEFT adapter folder: the soft prompt, the tokenizer and, in
``adapter_config.json``, the base model it was trained on (an absolute path or a hub id), which
must still be there to load it. Every stage loads a model folder through ``load_causal_lm``.
DPO refuses a soft prompt (TRL's DPOTrainer cannot train through one); evaluate scores it; the
registry refuses it (the MLflow transformers flavour cannot log an adapter on a local base).
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


def load_causal_lm(folder: Path | str) -> Any:
    """The causal language model in ``folder``; an adapter folder comes with its base model."""
    from transformers import AutoModelForCausalLM

    if not is_adapter_folder(folder):
        return AutoModelForCausalLM.from_pretrained(str(folder))
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(adapter_base_model(folder))
    return PeftModel.from_pretrained(base, str(folder))
