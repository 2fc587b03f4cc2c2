"""Wiring of the evaluate stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.evaluate import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.evaluate_models,
                [
                    "validated_validation_set",
                    "base_model",
                    "sft_model",
                    "aligned_model",
                    "params:evaluate",
                ],
                ["evaluation_metrics", "evaluation_metrics_tracked", "evaluation_samples"],
                name="evaluate_models",
            ),
        ]
    )
