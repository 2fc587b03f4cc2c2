"""Retrieval: passages of the organisation's documents found for a question and put into the
chat, the same way in fine-tuning, alignment, evaluation and serving. No Kedro here; torch and
sentence-transformers load only when something is embedded."""

from llm_pipeline.retrieval.config import RetrievalConfig
from llm_pipeline.retrieval.grounding import grounded_messages, passages_block, query_of
from llm_pipeline.retrieval.index import PassageIndex, fuse
from llm_pipeline.retrieval.passages import split_passages

__all__ = [
    "PassageIndex",
    "RetrievalConfig",
    "fuse",
    "grounded_messages",
    "passages_block",
    "query_of",
    "split_passages",
]
