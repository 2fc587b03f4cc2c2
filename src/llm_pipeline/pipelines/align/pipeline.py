"""Wiring of the align stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.align import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.align_with_dpo,
                [
                    "validated_preferences_train",
                    "validated_preferences_validation",
                    "sft_model",
                    "params:align",
                    "params:launch",
                ],
                "aligned_model",
                name="align_with_dpo",
            ),
        ]
    )
