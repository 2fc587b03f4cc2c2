"""Pretrain: the starting model adapted to the organisation's documents (continued, or
domain-adaptive, pretraining with its own tokenizer); without a starting model, a tokenizer
learnt on the documents and a model trained from scratch. Both under torchrun.

``pretrain_base_model`` is in ``training/stage_jobs.py`` because the tune stage's trials run it too.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.training.stage_jobs import pretrain_base_model

__all__ = ["pretrain_base_model", "train_document_tokenizer"]

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
