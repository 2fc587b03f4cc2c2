"""Wiring of the ingest stage: read, clean, redact, de-duplicate, split, account, report."""

from kedro.pipeline import Node, Pipeline

from llm_pipeline.pipelines.ingest import nodes

KINDS = ("documents", "conversations", "preferences", "validation")
SPLITS = (
    "documents_train",
    "documents_validation",
    "conversations_train",
    "conversations_validation",
    "preferences_train",
    "preferences_validation",
    "validation_set",
)


def _read(kind: str, function, raw: str) -> Node:
    return Node(
        function,
        [raw, "params:ingest"],
        [f"{kind}_read", f"{kind}_read_quarantine", f"{kind}_files"],
        name=function.__name__,
    )


def create_pipeline(**kwargs) -> Pipeline:
    params = "params:ingest"
    return Pipeline(
        [
            _read("documents", nodes.read_documents, "raw_documents"),
            _read("conversations", nodes.read_conversations, "raw_conversations"),
            _read("preferences", nodes.read_preferences, "raw_preferences"),
            _read("validation", nodes.read_validation_examples, "raw_validation"),
            Node(
                nodes.clean_records,
                [*(f"{kind}_read" for kind in KINDS), params],
                [*(f"{kind}_clean" for kind in KINDS), "cleaning_quarantine", "cleaning_counts"],
                name="clean_records",
            ),
            Node(
                nodes.redact_personal_data,
                [*(f"{kind}_clean" for kind in KINDS), params],
                [*(f"{kind}_redacted" for kind in KINDS), "pii_counts"],
                name="redact_personal_data",
            ),
            Node(
                nodes.drop_duplicates,
                [*(f"{kind}_redacted" for kind in KINDS), params],
                [
                    *(f"{kind}_unique" for kind in KINDS),
                    "duplicates_quarantine",
                    "duplicate_counts",
                ],
                name="drop_duplicates",
            ),
            Node(
                nodes.split_documents,
                ["documents_unique", params],
                ["documents_train_candidates", "ingested_documents_validation"],
                name="split_documents",
            ),
            Node(
                nodes.split_conversations,
                ["conversations_unique", "validation_unique", params],
                [
                    "conversations_train_candidates",
                    "ingested_conversations_validation",
                    "ingested_validation_set",
                ],
                name="split_conversations",
            ),
            Node(
                nodes.split_preferences,
                ["preferences_unique", params],
                ["preferences_train_candidates", "ingested_preferences_validation"],
                name="split_preferences",
            ),
            Node(
                nodes.remove_validation_leaks,
                [
                    "documents_train_candidates",
                    "conversations_train_candidates",
                    "preferences_train_candidates",
                    "ingested_validation_set",
                    params,
                ],
                [
                    "ingested_documents_train",
                    "ingested_conversations_train",
                    "ingested_preferences_train",
                    "leakage_quarantine",
                    "leakage_counts",
                ],
                name="remove_validation_leaks",
            ),
            Node(
                nodes.gather_quarantine,
                [
                    params,
                    *(f"{kind}_read_quarantine" for kind in KINDS),
                    "cleaning_quarantine",
                    "duplicates_quarantine",
                    "leakage_quarantine",
                ],
                "quarantine",
                name="gather_quarantine",
            ),
            Node(
                nodes.account_for_every_row,
                {
                    "quarantine": "quarantine",
                    **{f"{kind}_files": f"{kind}_files" for kind in KINDS},
                    **{name: f"ingested_{name}" for name in SPLITS},
                },
                "ingest_accounting",
                name="account_for_every_row",
            ),
            Node(
                nodes.build_data_report,
                {
                    "quarantine": "quarantine",
                    "accounting": "ingest_accounting",
                    "cleaning_counts": "cleaning_counts",
                    "pii_counts": "pii_counts",
                    "duplicate_counts": "duplicate_counts",
                    "leakage": "leakage_counts",
                    **{name: f"ingested_{name}" for name in SPLITS},
                },
                ["data_report", "data_report_plot", "text_length_histogram"],
                name="build_data_report",
            ),
        ]
    )
