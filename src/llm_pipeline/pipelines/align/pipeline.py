"""Wiring of the align stage: a reward model from the preference pairs, then the aligned model."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.align import nodes

PREFERENCES = ["validated_preferences_train", "validated_preferences_validation"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_reward_model,
                [*PREFERENCES, "sft_model", "params:align", "params:launch"],
                "reward_model",
                name="train_reward_model",
            ),
            Node(
                nodes.align_model,
                [*PREFERENCES, "sft_model", "reward_model", "params:align", "params:launch"],
                "aligned_model",
                name="align_model",
            ),
        ]
    )
