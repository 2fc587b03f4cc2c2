"""The index stage: the organisation's documents as searchable passages."""

from llm_pipeline.pipelines.index.pipeline import create_pipeline

__all__ = ["create_pipeline"]
