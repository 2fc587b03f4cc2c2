"""Evaluate: every model on the held-out validation set."""

from llm_pipeline.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
