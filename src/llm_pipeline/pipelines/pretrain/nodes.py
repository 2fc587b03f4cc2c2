"""Pretrain: the starting model adapted to the organisation's documents (continued, or
domain-adaptive, pretraining with its own tokenizer); without a starting model, a tokenizer
learnt on the documents and a model trained from scratch. Both under torchrun."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)


def train_document_tokenizer(
    documents_train: pd.DataFrame, starting_model: ModelFolder | None, params: dict[str, Any]
) -> ModelFolder:
    """The starting model's own tokenizer (its embeddings are trained on it), or, without a
    starting model, a byte-level BPE tokenizer learnt from the training documents."""
    from llm_pipeline.training.tokenizer import TokenizerConfig, train_tokenizer

    if starting_model is not None:
        from transformers import AutoTokenizer

        output_dir = Path(tempfile.mkdtemp(prefix="llm-pipeline-tokenizer-"))
        AutoTokenizer.from_pretrained(str(starting_model.path)).save_pretrained(str(output_dir))
        logger.info("Keeping the starting model's tokenizer (%s)", starting_model.path)
        return ModelFolder(output_dir)
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
    starting_model: ModelFolder | None,
    params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The starting model trained further on packed document blocks (``params.adapt``), or a
    ``params.architecture`` model of ``params.model`` size trained from scratch on them
    (``params.training``); evaluated on the validation documents when there are any."""
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
        "starting_model_dir": None,
        "peak_flops_per_device": params.get("peak_flops_per_device"),
    }
    if starting_model is not None:
        # Continued pretraining: the starting model's weights and its own size and tokenizer.
        job.update(
            starting_model_dir=starting_model.path,
            block_size=params["adapt"]["block_size"],
            model={},
            training=params["adapt"]["training"],
        )
    return run_training_job("llm_pipeline.training.pretrain", job, tables, launch_params)
