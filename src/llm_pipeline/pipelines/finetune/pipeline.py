"""Wiring of the finetune stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.finetune import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.finetune_model,
                [
                    "validated_conversations_train",
                    "validated_conversations_validation",
                    "base_model",
                    "finetune_starting_model",
                    "passage_index",
                    "params:finetune",
                    "params:retrieval",
                    "params:launch",
                ],
                "sft_model",
                name="finetune_model",
            ),
        ]
    )
