"""Align: preference optimisation of the fine-tuned model."""

from llm_pipeline.pipelines.align.pipeline import create_pipeline

__all__ = ["create_pipeline"]
