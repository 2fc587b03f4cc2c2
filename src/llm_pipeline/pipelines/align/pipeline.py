"""Wiring of the align stage: a reward model from the preference pairs, then the aligned model."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.align import nodes

PREFERENCES = ["validated_preferences_train", "validated_preferences_validation"]
# The passage index and the align and retrieval parameters, in the nodes' order.
GROUNDING = ["passage_index", "params:align", "params:retrieval"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_reward_model,
                [*PREFERENCES, "sft_model", *GROUNDING, "params:launch"],
                "reward_model",
                name="train_reward_model",
            ),
            Node(
                nodes.align_model,
                [*PREFERENCES, "sft_model", "reward_model", *GROUNDING, "params:launch"],
                "aligned_model",
                name="align_model",
            ),
        ]
    )
