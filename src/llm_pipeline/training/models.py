"""Loading a model folder, whatever fine-tuning method made it.

``full`` and ``lora`` fine-tuning save a plain Hugging Face folder (LoRA is merged into the base
weights, the adapter kept in ``KEPT_ADAPTER/``). ``prompt_tuning`` saves a PEFT adapter folder:
the soft prompt, the tokenizer and, in ``adapter_config.json``, the base model it was trained on
(an absolute path or a hub id), which must still be there to load it. Every stage loads a model
folder through ``load_causal_lm``. DPO trains a soft prompt further as a soft prompt; evaluate
scores it; the registry logs it as an adapter over its registered base
(``serving/adapters.py``), or with ``register.weights: full`` through ``merge_soft_prompt``, as
a plain folder that needs neither PEFT nor the base.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ADAPTER_CONFIG_FILE = "adapter_config.json"
# Where a model folder made by folding a LoRA adapter into its base keeps that adapter.
KEPT_ADAPTER = "lora_adapter"


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


def load_causal_lm(folder: Path | str, trainable: bool = False, **load: Any) -> Any:
    """The causal language model in ``folder``; an adapter folder comes with its base model,
    its adapter ``trainable`` or frozen. ``load`` goes to ``from_pretrained`` (the base's, for
    an adapter): ``inference_placement()`` for a model that only answers."""
    from transformers import AutoModelForCausalLM

    if not is_adapter_folder(folder):
        return AutoModelForCausalLM.from_pretrained(str(folder), **load)
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(adapter_base_model(folder), **load)
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

    return fold_soft_prompt(
        load_causal_lm(folder), AutoTokenizer.from_pretrained(str(folder)), output_dir
    )


def fold_soft_prompt(model: Any, tokenizer: Any, output_dir: Path | str) -> Path:
    """``merge_soft_prompt`` of a soft prompt already loaded on its base (``model``, a PEFT
    model) with its ``tokenizer``."""
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


# What may be said of how a model to train is loaded (``from_pretrained``'s keyword arguments).
MODEL_INIT_KEYS = ("dtype", "attn_implementation", "quantization_config")


def model_init_kwargs(fields: dict[str, Any], section: str) -> dict[str, Any]:
    """``from_pretrained``'s arguments for a model to train, from a job's ``model_init_kwargs``
    (a null value is left out): fp32 weights unless ``dtype`` says otherwise (bf16 then comes
    from autocast, over fp32 master weights), ``attn_implementation`` (``flash_attention_2``,
    ``sdpa``) and a ``quantization_config`` given as ``transformers.BitsAndBytesConfig``
    fields (QLoRA: the frozen base in 4 bits under LoRA adapters; bitsandbytes and a GPU are
    needed to load it)."""
    unknown = sorted(set(fields) - set(MODEL_INIT_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown keys under '{section}.model_init_kwargs': {unknown}; "
            f"known: {list(MODEL_INIT_KEYS)}."
        )
    import torch

    kwargs = {
        "dtype": "float32",
        **{key: value for key, value in fields.items() if value is not None},
    }
    if kwargs["dtype"] != "auto":
        kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    if isinstance(kwargs.get("quantization_config"), dict):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(**kwargs["quantization_config"])
    return kwargs


def merge_adapter_folder(folder: Path, base: Path | str) -> None:
    """Replace the LoRA adapter saved in ``folder`` by the plain model it makes of ``base``:
    the base loaded anew in fp32 (whole, not sharded, not quantized) and the adapter folded
    into its weights. So a model trained under FSDP or in 4 bits (QLoRA) still gives a plain
    full-precision model to later stages and the registry.

    The adapter stays beside the weights, in ``KEPT_ADAPTER/``, naming ``base`` as its base
    model: the registry can then register the adapters over a pinned base instead of the
    weights (``adapter_chain``, ``register.weights``)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    folder = Path(folder)
    adapter = json.loads((folder / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    if adapter.get("task_type") == "SEQ_CLS":
        # A reward model: a one-output head, read back from the adapter (modules_to_save), and
        # the pad token id the trainer set (the head finds each row's last token by it).
        from transformers import AutoTokenizer

        base_model = AutoModelForSequenceClassification.from_pretrained(
            str(base),
            dtype=torch.float32,
            num_labels=1,
            pad_token_id=AutoTokenizer.from_pretrained(str(folder)).pad_token_id,
        )
    else:
        base_model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base_model, str(folder)).merge_and_unload()
    kept = folder / KEPT_ADAPTER
    kept.mkdir(exist_ok=True)  # a save interrupted after this point left one
    for name in ("adapter_model.safetensors", "adapter_model.bin", ADAPTER_CONFIG_FILE):
        if (folder / name).exists():
            os.replace(folder / name, kept / name)
    config = json.loads((kept / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base)
    (kept / ADAPTER_CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    merged.save_pretrained(str(folder))


def adapter_chain(folder: Path | str) -> tuple[Path, list[Path]]:
    """The plain model that ``folder`` was made from by adapters, and those adapters in the
    order they were trained: each stage that trained LoRA kept its adapter (``KEPT_ADAPTER``)
    naming the folder it trained on, which may have kept one of its own; a soft prompt's
    folder is itself the adapter, last. A folder that kept none is its own base, with no
    adapters."""
    current, adapters = Path(folder), []
    outermost = [current] if is_adapter_folder(current) else []
    while outermost or (current / KEPT_ADAPTER / ADAPTER_CONFIG_FILE).is_file():
        adapter = outermost.pop() if outermost else current / KEPT_ADAPTER
        adapters.append(adapter)
        base = adapter_base_model(adapter)
        if not Path(base).is_absolute():
            raise ValueError(
                f"The adapter in {adapter} was trained on {base}, not on a model folder on "
                "disk: its base cannot be registered from here."
            )
        current = Path(base)
    return current, adapters[::-1]


def inference_placement() -> dict[str, Any]:
    """``from_pretrained``'s arguments for a model that only answers (evaluation, feedback): on
    GPUs its layers spread over them (``device_map="auto"``) in bf16 (fp16 where there is no
    bf16), half the memory of fp32 and the GPUs' own speed; on a CPU nothing (fp32, where
    ``inference_precision`` adds bf16 autocast on CPUs with bf16 units). Inputs go to
    ``model.device``."""
    import torch

    if not torch.cuda.is_available():
        return {}
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"device_map": "auto", "dtype": dtype}
