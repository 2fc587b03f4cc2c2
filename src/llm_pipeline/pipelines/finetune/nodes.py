"""Finetune: supervised fine-tuning (full, LoRA or prompt tuning) of a chosen starting model.

``finetune.base_model`` says where the starting model comes from: ``null``, the pretrain
stage's model (the project's starting model adapted to its documents, or one trained from
scratch); anything else is named as ``starting_model`` is (``datasets/starting_model.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import Folder, ModelFolder
from llm_pipeline.datasets.starting_model import resolve_model

logger = logging.getLogger(__name__)


def choose_starting_model(pretrained: ModelFolder, params: dict[str, Any]) -> ModelFolder:
    """The model that ``params.base_model`` names (see the module docstring), by absolute path,
    or the pretrain stage's model when it names none.

    The path is absolute because a prompt-tuned adapter records it as its base model.
    """
    named = resolve_model(params.get("base_model"), params["gguf_cache_dir"])
    if named is None:
        return ModelFolder(pretrained.path.resolve())
    logger.info("Fine-tuning %s instead of the pretrained model", named.path)
    return named


def finetune_model(
    conversations_train: pd.DataFrame,
    conversations_validation: pd.DataFrame,
    base_model: ModelFolder,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The starting model fine-tuned with TRL's SFTTrainer on the training conversations, each
    with the passages retrieved for it in its system turn (``retrieval.enabled``)."""
    from llm_pipeline.retrieval.conversations import grounding
    from llm_pipeline.torchrun_jobs import run_training_job

    start = choose_starting_model(base_model, params)
    ground = grounding(passage_index.path, retrieval_params, training=True)
    tables = {"train_file": (grounded(conversations_train, ground), ["messages"])}
    if len(conversations_validation):
        tables["eval_file"] = (grounded(conversations_validation, ground), ["messages"])
    job = {
        "model_dir": start.path,
        "method": params["method"],
        "sft": params["sft"],
        "lora": params.get("lora") or {},
        "prompt_tuning": params.get("prompt_tuning") or {},
    }
    return run_training_job("llm_pipeline.training.sft", job, tables, launch_params)


def grounded(conversations: pd.DataFrame, ground: Any) -> pd.DataFrame:
    """``conversations`` with their messages grounded by ``ground`` (a copy)."""
    frame = conversations.copy()
    frame["messages"] = ground([list(messages) for messages in frame["messages"]])
    return frame
