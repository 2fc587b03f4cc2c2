"""Pretrain: the starting model adapted to the documents, or a tokenizer and a model from
scratch."""

from llm_pipeline.pipelines.pretrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
