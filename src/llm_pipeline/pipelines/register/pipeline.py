"""Wiring of the register stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.register import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.decide_promotion,
                ["evaluation_metrics", "champion_model", "params:register"],
                "promotion_decision",
                name="decide_promotion",
            ),
            Node(
                nodes.prepare_registration,
                [
                    "aligned_model",
                    "base_model",
                    "sft_model",
                    "reward_model",
                    "promotion_decision",
                    "evaluation_metrics",
                    "validation_report",
                    "run_lineage",
                    "passage_index",
                    "params:register",
                    "params:retrieval",
                ],
                "registered_model",
                name="register_aligned_model",
            ),
        ]
    )
