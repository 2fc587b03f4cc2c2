"""Pretrain: a tokenizer learnt on the documents, then a model from scratch under torchrun."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)


def train_document_tokenizer(documents_train: pd.DataFrame, params: dict[str, Any]) -> ModelFolder:
    """A byte-level BPE tokenizer learnt from the training documents."""
    from llm_pipeline.training.tokenizer import TokenizerConfig, train_tokenizer

    config = TokenizerConfig.model_validate(params["tokenizer"])
    output_dir = Path(tempfile.mkdtemp(prefix="llm-pipeline-tokenizer-"))
    train_tokenizer(documents_train["text"].tolist(), config, output_dir)
    logger.info(
        "Trained a %d-entry tokenizer on %d documents", config.vocab_size, len(documents_train)
    )
    return ModelFolder(output_dir)


def pretrain_base_model(
    documents_train: pd.DataFrame,
    documents_validation: pd.DataFrame,
    tokenizer: ModelFolder,
    params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """A ``params.architecture`` model of ``params.model`` size trained from scratch on packed
    document blocks, evaluated on the validation documents when there are any."""
    from llm_pipeline.torchrun_jobs import run_training_job

    tables = {"train_file": (documents_train, ["text"])}
    if len(documents_validation):
        tables["eval_file"] = (documents_validation, ["text"])
    job = {
        "tokenizer_dir": tokenizer.path,
        "block_size": params["block_size"],
        "architecture": params["architecture"],
        "model": params["model"],
        "training": params["training"],
        "peak_flops_per_device": params.get("peak_flops_per_device"),
    }
    return run_training_job("llm_pipeline.training.pretrain", job, tables, launch_params)
