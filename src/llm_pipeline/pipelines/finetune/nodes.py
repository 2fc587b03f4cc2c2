"""Finetune: supervised fine-tuning of the pretrained model, or of a local Hugging Face folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)


def choose_starting_model(pretrained: ModelFolder, params: dict[str, Any]) -> ModelFolder:
    """``params.base_model`` when it names a local model folder, else the pretrained model."""
    named = params.get("base_model")
    if not named:
        return pretrained
    folder = Path(named).expanduser()
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"finetune.base_model is '{named}', which is not a Hugging Face model folder "
            "(no config.json)."
        )
    logger.info("Fine-tuning %s instead of the pretrained model", folder)
    return ModelFolder(folder)


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
    job = {"model_dir": start.path, "method": params["method"], "sft": params["sft"]}
    return run_training_job("llm_pipeline.training.sft", job, tables, launch_params)
