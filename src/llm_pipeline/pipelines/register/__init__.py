"""Register: the aligned model into the MLflow Model Registry behind a quality gate."""

from llm_pipeline.pipelines.register.pipeline import create_pipeline

__all__ = ["create_pipeline"]
