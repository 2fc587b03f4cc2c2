"""Wiring of the ingest stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.ingest import nodes


def create_pipeline(**kwargs) -> Pipeline:
    params = "params:ingest"
    return Pipeline(
        [
            Node(
                nodes.read_documents,
                ["raw_documents", params],
                ["documents", "documents_quarantine"],
                name="read_documents",
            ),
            Node(
                nodes.read_conversations,
                ["raw_conversations", params],
                ["conversations", "conversations_quarantine"],
                name="read_conversations",
            ),
            Node(
                nodes.read_preferences,
                ["raw_preferences", params],
                ["preferences", "preferences_quarantine"],
                name="read_preferences",
            ),
            Node(
                nodes.read_validation_examples,
                ["raw_validation", params],
                ["explicit_validation_examples", "validation_quarantine"],
                name="read_validation_examples",
            ),
            Node(
                nodes.split_documents,
                ["documents", params],
                ["ingested_documents_train", "ingested_documents_validation"],
                name="split_documents",
            ),
            Node(
                nodes.split_conversations,
                ["conversations", "explicit_validation_examples", params],
                [
                    "ingested_conversations_train",
                    "ingested_conversations_validation",
                    "ingested_validation_set",
                ],
                name="split_conversations",
            ),
            Node(
                nodes.split_preferences,
                ["preferences", params],
                ["ingested_preferences_train", "ingested_preferences_validation"],
                name="split_preferences",
            ),
            Node(
                nodes.gather_quarantine,
                [
                    "documents_quarantine",
                    "conversations_quarantine",
                    "preferences_quarantine",
                    "validation_quarantine",
                ],
                "quarantine",
                name="gather_quarantine",
            ),
        ]
    )
