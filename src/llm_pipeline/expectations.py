"""Every data contract of the project, as Great Expectations suites, in one place.

A contract runs on a flat view of a dataset: nested fields (conversation turns) are summarised
into columns first (``roles_alternate``, ``ends_with_assistant``), so each rule is one plain
expectation that Data Docs and the report can name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

CONTRACTS = ("documents", "conversations", "preferences", "validation_set", "ingest_accounting")


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


def contract_view(contract: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The flat columns the ``contract`` checks, derived from ``frame``."""
    frame = frame.reset_index(drop=True)
    view = pd.DataFrame({"id": frame["id"] if "id" in frame else pd.Series(dtype=object)})
    if contract == "documents":
        view["text"] = frame.get("text", pd.Series(dtype=object))
    elif contract == "ingest_accounting":
        view = (
            frame[["source", "balanced"]]
            .rename(columns={"source": "id"})
            .astype({"balanced": bool})
        )
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
        view["text"] = messages.map(lambda ms: "\n".join(m.get("content") or "" for m in ms))
    elif contract == "preferences":
        for column in ("prompt", "chosen", "rejected"):
            view[column] = frame.get(column, pd.Series(dtype=object))
        view["chosen_differs"] = (view["chosen"] != view["rejected"]).astype(bool)
    elif contract == "validation_set":
        for column in ("prompt", "reference"):
            view[column] = frame.get(column, pd.Series(dtype=object))
        view["leaks_into_training"] = frame.get("leaks_into_training", False)
    return view


def build_suite(contract: str, dataset: str, params: dict) -> Any:
    """The Great Expectations suite for one dataset under ``contract``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from llm_pipeline.hygiene.pii import LEFTOVER_PATTERN

    suite = gx.ExpectationSuite(name=f"{dataset}_contract")
    min_rows = params["min_rows"].get(dataset, 1)
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    no_pii_left = {
        "documents": ["text"],
        "conversations": ["text"],
        "preferences": ["prompt", "chosen", "rejected"],
        "validation_set": ["prompt", "reference"],
    }
    for column in no_pii_left.get(contract, []):
        suite.add_expectation(
            gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=LEFTOVER_PATTERN)
        )
    if contract == "ingest_accounting":
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="balanced", value_set=[True]))
    elif contract == "documents":
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
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInSet(column="leaks_into_training", value_set=[False])
        )
    return suite


def run_contracts(
    frames: dict[str, pd.DataFrame], params: dict, project_dir: Path
) -> tuple[list[dict], Path]:
    """Validate each frame against its contract; summaries, and the Data Docs site's folder.

    A file-backed context in ``project_dir`` keeps the validation results so Great
    Expectations can render them as HTML Data Docs.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    results = []
    for dataset, frame in frames.items():
        contract = contract_of(dataset)
        view = contract_view(contract, frame)
        suite = context.suites.add(build_suite(contract, dataset, params))
        batch = (
            context.data_sources.add_pandas(name=dataset)
            .add_dataframe_asset(name=dataset)
            .add_batch_definition_whole_dataframe(name=dataset)
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=dataset, data=batch, suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": view}, result_format="SUMMARY")
        results.append(summarise_result(dataset, contract, len(frame), view, result, params))
    context.build_data_docs()
    return results, project_dir / "gx" / "uncommitted" / "data_docs" / "local_site"


def summarise_result(
    dataset: str, contract: str, rows: int, view: pd.DataFrame, result: Any, params: dict
) -> dict:
    """A JSON-ready summary of one validation, with failing examples named by row id."""
    examples = params["examples_per_failure"]
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        details = outcome.result or {}
        indexes = details.get("partial_unexpected_index_list") or []
        failures.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "unexpected_count": details.get("unexpected_count"),
                "observed_value": _plain([details.get("observed_value")])[0],
                "examples": _plain(details.get("partial_unexpected_list", [])[:examples]),
                "example_ids": [
                    str(view["id"].iloc[i]) for i in indexes[:examples] if i < len(view)
                ],
                "error": (outcome.exception_info or {}).get("exception_message"),
            }
        )
    return {
        "dataset": dataset,
        "contract": contract,
        "rows": rows,
        "success": bool(result.success),
        "evaluated_expectations": result.statistics["evaluated_expectations"],
        "successful_expectations": result.statistics["successful_expectations"],
        "failures": failures,
    }


def _plain(values: list) -> list:
    return [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in values]
