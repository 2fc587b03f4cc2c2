"""Feedback: AI-judged preference pairs from the fine-tuned model, run on demand."""

from llm_pipeline.pipelines.feedback.pipeline import create_pipeline

__all__ = ["create_pipeline"]
