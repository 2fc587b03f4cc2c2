"""Align: a reward model from the preference pairs, then DPO or RLHF of the fine-tuned model."""

from llm_pipeline.pipelines.align.pipeline import create_pipeline

__all__ = ["create_pipeline"]
