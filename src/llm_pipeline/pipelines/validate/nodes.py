"""Validate: run every dataset's contract, save the report, and stop the run if one fails.

Checking and gating are two nodes so the full report is written (and logged to MLflow) even
when the gate then stops the run; training reads only what passed the gate.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline import expectations
from llm_pipeline.datasets.jsonl import as_frame
from llm_pipeline.datasets.model_folder import Folder

logger = logging.getLogger(__name__)


class DataContractError(RuntimeError):
    """A dataset broke its data contract; the message lists dataset, expectation, examples."""


def flag_leaks(datasets: dict[str, pd.DataFrame], leakage: dict) -> pd.DataFrame:
    """The validation set with ``leaks_into_training``: whether an example still shares a long
    n-gram with any training row. Checked here again, independently of what ingest removed."""
    from llm_pipeline.hygiene import near_duplicates, records

    validation = datasets["validation_set"].copy()
    texts = records.leakage_probes(validation, leakage["fields"], leakage["min_words"])
    config = near_duplicates.LeakageConfig(ngram=leakage["ngram"])
    leaked: set[int] = set()
    # Without a probe long enough to look for, no training text needs hashing.
    for kind in ("documents", "conversations", "preferences") if any(texts) else ():
        training = training_texts(kind, datasets[f"{kind}_train"])
        leaked.update(near_duplicates.leaked_ngrams_index(training, texts, config))
    validation["leaks_into_training"] = [i in leaked for i in range(len(validation))]
    return validation


def training_texts(kind: str, frame: pd.DataFrame) -> list[str]:
    """``records.record_texts``, with a conversations table flattened once instead of a
    Python join per row."""
    from llm_pipeline.hygiene import records

    if kind == "conversations" and "messages" in frame:
        return expectations.conversation_texts(expectations.conversation_turns(frame["messages"]))
    return records.record_texts(kind, frame)


def check_data_contracts(
    params: dict,
    leakage: dict,
    pii: dict,
    ingest_accounting: pd.DataFrame,
    **datasets: pd.DataFrame,
) -> tuple[dict[str, Any], Folder]:
    """Validate each dataset against its contract; the report, and the Data Docs HTML site.

    The ingest accounting (rows in = rows out + rows quarantined, per file) is a contract too.
    """
    datasets = {name: as_frame(table) for name, table in datasets.items()}
    frames = {
        **datasets,
        "validation_set": flag_leaks(datasets, leakage),
        "ingest_accounting": ingest_accounting,
    }
    docs = Path(tempfile.mkdtemp(prefix="llm-pipeline-data-docs-"))
    results = expectations.run_contracts(dict(sorted(frames.items())), params, pii, docs)
    for result in results:
        logger.info(
            "Contract %s on %s: %s (%d/%d expectations, %d rows)",
            result["contract"],
            result["dataset"],
            "passed" if result["success"] else "FAILED",
            result["successful_expectations"],
            result["evaluated_expectations"],
            result["rows"],
        )
    report = {"success": all(r["success"] for r in results), "datasets": results}
    return report, Folder(docs)


def describe_failures(report: dict[str, Any]) -> str:
    """A readable summary of every failed expectation, with example values and row ids."""
    lines = []
    for result in report["datasets"]:
        for failure in result["failures"]:
            column = f" on column '{failure['column']}'" if failure["column"] else ""
            count = failure["unexpected_count"]
            what = f"{count} rows" if count is not None else f"observed {failure['observed_value']}"
            lines.append(f"- {result['dataset']}: {failure['expectation']}{column}: {what}")
            if failure["example_ids"]:
                lines.append(f"    ids: {', '.join(failure['example_ids'])}")
            if failure["examples"]:
                lines.append(f"    values: {failure['examples']}")
            if failure["error"]:
                lines.append(f"    error: {failure['error']}")
    return "\n".join(lines)


def enforce_data_contracts(
    report: dict[str, Any], **datasets: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Pass the datasets on unchanged when every contract holds; otherwise stop the run."""
    if not report["success"]:
        raise DataContractError(
            "Data contracts failed; no training was started. The full report is the "
            "validation_report dataset.\n" + describe_failures(report)
        )
    return {name: as_frame(table) for name, table in datasets.items()}
