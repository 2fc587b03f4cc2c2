"""Finetune: supervised fine-tuning on conversations."""

from llm_pipeline.pipelines.finetune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
