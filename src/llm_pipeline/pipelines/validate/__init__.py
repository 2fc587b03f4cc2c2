"""Validate: Great Expectations data contracts gate every dataset before training."""

from llm_pipeline.pipelines.validate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
