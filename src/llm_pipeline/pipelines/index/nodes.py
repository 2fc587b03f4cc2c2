"""Index: the validated documents cut into passages and indexed for retrieval (MiniLM
embeddings and BM25), so that finetune, align, evaluate and the registered model put the same
passages into their prompts. Every document is indexed, the held-out ones too: they are held
out from the model's weights (document perplexity), not from what it may look up."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import Folder

logger = logging.getLogger(__name__)


def build_passage_index(
    documents_train: pd.DataFrame,
    documents_validation: pd.DataFrame,
    conversations_train: pd.DataFrame,
    params: dict[str, Any],
    encoder_params: dict[str, Any],
    classifier_params: dict[str, Any],
) -> Folder:
    """The passage index folder of every validated document, with the training conversations'
    questions as keys of the passages that hold their answers (``retrieval/index.py``), searched
    with MiniLM fine-tuned on those keys (``retrieval/encoder.py``; ``retrieval_encoder.steps``
    0: as shipped), and the answer classifier of its past answers (``retrieval/classifier.py``;
    ``answer_classifier.weight`` 0: none); the held-out conversations are not used, so they
    stay held out."""
    from llm_pipeline.retrieval import PassageIndex, RetrievalConfig, split_passages
    from llm_pipeline.retrieval.config import AnswerClassifierConfig, EncoderTuningConfig
    from llm_pipeline.retrieval.index import question_answer_pairs

    config = RetrievalConfig.model_validate(params)
    tuning = EncoderTuningConfig.model_validate(encoder_params)
    classifier = AnswerClassifierConfig.model_validate(classifier_params)
    documents = pd.concat([documents_train, documents_validation], ignore_index=True)
    passages = split_passages(documents.to_dict(orient="records"), config.max_words)
    questions = question_answer_pairs([list(m) for m in conversations_train["messages"]])
    index = PassageIndex.build(passages, None, config, questions, tuning, classifier)
    folder = Path(tempfile.mkdtemp(prefix="llm-pipeline-index-")) / "index"
    index.save(folder)
    logger.info(
        "Indexed %d passages of %d documents, with %d past questions as keys",
        len(passages),
        len(documents),
        len(index.keys),
    )
    return Folder(folder)
