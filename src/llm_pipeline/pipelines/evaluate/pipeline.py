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
                ["model_metrics", "evaluation_samples"],
                name="evaluate_models",
            ),
            Node(
                nodes.measure_alignment,
                [
                    "validated_preferences_validation",
                    "sft_model",
                    "aligned_model",
                    "reward_model",
                    "params:evaluate",
                ],
                "alignment_evidence",
                name="measure_alignment",
            ),
            Node(
                nodes.report_metrics,
                ["model_metrics", "alignment_evidence"],
                ["evaluation_metrics", "evaluation_metrics_tracked"],
                name="report_metrics",
            ),
        ]
    )
