"""Ingest: raw files to normalised, de-duplicated, split tables and a quarantine."""

from llm_pipeline.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
