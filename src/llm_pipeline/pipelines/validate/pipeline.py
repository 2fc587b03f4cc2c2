"""Wiring of the validate stage."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.validate import nodes

DATASETS = (
    "documents_train",
    "documents_validation",
    "conversations_train",
    "conversations_validation",
    "preferences_train",
    "preferences_validation",
    "validation_set",
)


def create_pipeline(**kwargs) -> Pipeline:
    ingested = {name: f"ingested_{name}" for name in DATASETS}
    return Pipeline(
        [
            Node(
                nodes.check_data_contracts,
                {
                    "params": "params:validate",
                    "leakage": "params:ingest.leakage",
                    "pii": "params:ingest.pii",
                    "ingest_accounting": "ingest_accounting",
                    **ingested,
                },
                ["validation_report", "data_docs"],
                name="check_data_contracts",
            ),
            Node(
                nodes.enforce_data_contracts,
                {"report": "validation_report", **ingested},
                {name: f"validated_{name}" for name in DATASETS},
                name="enforce_data_contracts",
            ),
        ]
    )
