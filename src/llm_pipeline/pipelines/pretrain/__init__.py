"""Pretrain: a tokenizer and a small model from scratch on the documents."""

from llm_pipeline.pipelines.pretrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
