"""Validate: run every dataset's contract, save the report, and stop the run if one fails.

Checking and gating are two nodes so the full report is written (and logged to MLflow) even
when the gate then stops the run; training reads only what passed the gate.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from llm_pipeline import expectations

logger = logging.getLogger(__name__)


class DataContractError(RuntimeError):
    """A dataset broke its data contract; the message lists dataset, expectation, examples."""


def check_data_contracts(params: dict, **datasets: pd.DataFrame) -> dict[str, Any]:
    """Validate each dataset against its contract; the report says what passed and what not."""
    context = expectations.ephemeral_context()
    results = [
        expectations.validate_dataset(context, name, frame, params)
        for name, frame in sorted(datasets.items())
    ]
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
    return {"success": all(r["success"] for r in results), "datasets": results}


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
    return datasets
