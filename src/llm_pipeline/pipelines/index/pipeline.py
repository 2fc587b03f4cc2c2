"""Wiring of the index stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.index import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.build_passage_index,
                [
                    "validated_documents_train",
                    "validated_documents_validation",
                    "validated_conversations_train",
                    "params:retrieval",
                    "params:retrieval_encoder",
                    "params:answer_classifier",
                ],
                "passage_index",
                name="build_passage_index",
            ),
        ]
    )
