"""Tune: hyperparameter search over a training stage's parameters, not part of the default run."""

from llm_pipeline.pipelines.tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
