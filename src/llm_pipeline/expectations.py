"""Every data contract of the project, as Great Expectations suites, in one place.

A contract runs on a flat view of a dataset: nested fields (conversation turns) are summarised
into columns first (``roles_alternate``, ``ends_with_assistant``), so each rule is one plain
expectation that Data Docs and the report can name.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

CONTRACTS = ("documents", "conversations", "preferences", "validation_set")


def contract_of(dataset: str) -> str:
    """``documents_train`` follows the ``documents`` contract, and so on."""
    for contract in CONTRACTS:
        if dataset.startswith(contract):
            return contract
    raise KeyError(f"No data contract for dataset '{dataset}'")


def _dialogue(messages: list[dict]) -> list[dict]:
    return messages[1:] if messages and messages[0].get("role") == "system" else messages


def _roles_alternate(messages: list[dict]) -> bool:
    roles = [m.get("role") for m in _dialogue(messages)]
    return bool(roles) and all(
        r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles)
    )


def _text_lengths(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].map(lambda v: len(v) if isinstance(v, str) else 0)


def contract_view(contract: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The flat columns the ``contract`` checks, derived from ``frame``."""
    frame = frame.reset_index(drop=True)
    view = pd.DataFrame({"id": frame["id"] if "id" in frame else pd.Series(dtype=object)})
    if contract == "documents":
        view["text"] = frame.get("text", pd.Series(dtype=object))
    elif contract == "conversations":
        messages = frame.get("messages", pd.Series(dtype=object))
        view["roles_alternate"] = messages.map(_roles_alternate).astype(bool)
        view["ends_with_assistant"] = messages.map(
            lambda ms: bool(ms) and ms[-1].get("role") == "assistant"
        ).astype(bool)
        view["shortest_turn"] = messages.map(
            lambda ms: min((len(m.get("content") or "") for m in ms), default=0)
        ).astype(int)
        view["longest_turn"] = messages.map(
            lambda ms: max((len(m.get("content") or "") for m in ms), default=0)
        ).astype(int)
    elif contract == "preferences":
        for column in ("prompt", "chosen", "rejected"):
            view[column] = frame.get(column, pd.Series(dtype=object))
        view["chosen_differs"] = (view["chosen"] != view["rejected"]).astype(bool)
    elif contract == "validation_set":
        for column in ("prompt", "reference"):
            view[column] = frame.get(column, pd.Series(dtype=object))
    return view


def build_suite(contract: str, dataset: str, params: dict) -> Any:
    """The Great Expectations suite for one dataset under ``contract``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{dataset}_contract")
    min_rows = params["min_rows"].get(dataset, 1)
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    if contract == "documents":
        chars = params["document_chars"]
        suite.add_expectation(
            gxe.ExpectColumnValueLengthsToBeBetween(
                column="text", min_value=chars["min"], max_value=chars["max"]
            )
        )
    elif contract == "conversations":
        chars = params["message_chars"]
        for column in ("roles_alternate", "ends_with_assistant"):
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True]))
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column="shortest_turn", min_value=chars["min"])
        )
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column="longest_turn", max_value=chars["max"])
        )
    elif contract == "preferences":
        chars = params["message_chars"]
        for column in ("prompt", "chosen", "rejected"):
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
            suite.add_expectation(
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column=column, min_value=chars["min"], max_value=chars["max"]
                )
            )
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInSet(column="chosen_differs", value_set=[True])
        )
    elif contract == "validation_set":
        chars = params["message_chars"]
        for column in ("prompt", "reference"):
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
            suite.add_expectation(
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column=column, min_value=chars["min"], max_value=chars["max"]
                )
            )
    return suite


def validate_dataset(context: Any, dataset: str, frame: pd.DataFrame, params: dict) -> dict:
    """Run ``dataset``'s contract; a JSON-ready summary with failing examples by id."""
    contract = contract_of(dataset)
    view = contract_view(contract, frame)
    suite = build_suite(contract, dataset, params)
    batch = (
        context.data_sources.add_pandas(name=dataset)
        .add_dataframe_asset(name=dataset)
        .add_batch_definition_whole_dataframe(name=dataset)
        .get_batch(batch_parameters={"dataframe": view})
    )
    result = batch.validate(suite, result_format="SUMMARY")
    examples = params["examples_per_failure"]
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        details = outcome.result or {}
        rows = details.get("partial_unexpected_index_list") or []
        failures.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "unexpected_count": details.get("unexpected_count"),
                "observed_value": details.get("observed_value"),
                "examples": _plain(details.get("partial_unexpected_list", [])[:examples]),
                "example_ids": [str(view["id"].iloc[i]) for i in rows[:examples] if i < len(view)],
                "error": (outcome.exception_info or {}).get("exception_message"),
            }
        )
    return {
        "dataset": dataset,
        "contract": contract,
        "rows": len(frame),
        "success": bool(result.success),
        "evaluated_expectations": result.statistics["evaluated_expectations"],
        "successful_expectations": result.statistics["successful_expectations"],
        "failures": failures,
    }


def ephemeral_context() -> Any:
    """A Great Expectations context that writes no files and calls no network."""
    import great_expectations as gx

    return gx.get_context(mode="ephemeral")


def _plain(values: list) -> list:
    return [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in values]
