"""Every data contract of the project, as Great Expectations suites, in one place.

A contract runs on a flat view of a dataset: nested fields (conversation turns) are summarised
into columns first (``roles_alternate``, ``ends_with_assistant``), so each rule is one plain
expectation that Data Docs and the report can name.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

# Columns that must hold no personal data: the contract looks again, with the same detectors,
# at what ingest wrote.
NO_PII_LEFT = {
    "documents": ["text"],
    "conversations": ["text"],
    "preferences": ["prompt", "chosen", "rejected"],
    "validation_set": ["prompt", "reference"],
}
CONTRACTS = ("documents", "conversations", "preferences", "validation_set", "ingest_accounting")


def contract_of(dataset: str) -> str:
    """``documents_train`` follows the ``documents`` contract, and so on."""
    for contract in CONTRACTS:
        if dataset.startswith(contract):
            return contract
    raise KeyError(f"No data contract for dataset '{dataset}'")


_ALTERNATING = ["user", "assistant"] * 512


def _conversation_summary(messages: list[dict]) -> tuple[bool, bool, int, int, str]:
    """What the conversation contract checks, in one pass over the turns."""
    roles = [m.get("role") for m in messages]
    contents = [m.get("content") or "" for m in messages]
    dialogue = roles[1:] if roles and roles[0] == "system" else roles
    expected = (
        _ALTERNATING[: len(dialogue)]
        if len(dialogue) <= len(_ALTERNATING)
        else (["user", "assistant"] * len(dialogue))[: len(dialogue)]
    )
    lengths = list(map(len, contents))
    return (
        bool(dialogue) and dialogue == expected,
        bool(roles) and roles[-1] == "assistant",
        min(lengths, default=0),
        max(lengths, default=0),
        "\n".join(contents),
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
        summaries = [_conversation_summary(ms) for ms in frame.get("messages", [])]
        columns = (
            "roles_alternate",
            "ends_with_assistant",
            "shortest_turn",
            "longest_turn",
            "text",
        )
        for index, column in enumerate(columns):
            view[column] = [summary[index] for summary in summaries]
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

    suite = gx.ExpectationSuite(name=f"{dataset}_contract")
    min_rows = params["min_rows"].get(dataset, 1)
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    if contract in NO_PII_LEFT:
        suite.add_expectation(gxe.ExpectColumnValuesToBeNull(column="personal_data"))
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


def with_personal_data_found(view: pd.DataFrame, contract: str, pii_params: dict) -> pd.DataFrame:
    """The view plus ``personal_data``: the first item of personal data still in a row (as
    ``type: text``), else null. The organisation's own details (``pii.keep``) do not count."""
    if contract not in NO_PII_LEFT:
        return view
    from llm_pipeline.hygiene import pii

    config = pii.PiiConfig.model_validate(pii_params)
    columns = [view[column].tolist() for column in NO_PII_LEFT[contract]]
    texts = [
        "\n".join(v for v in values if isinstance(v, str)) for values in zip(*columns, strict=True)
    ]
    # One scan over all rows joined is far cheaper than a call per row; the separator is
    # something no detector reads across.
    separator = "\n\x00\n"
    joined = separator.join(texts)
    starts = list(itertools.accumulate((len(t) + len(separator) for t in texts), initial=0))
    found: list[str | None] = [None] * len(texts)
    for start, end, kind in pii.find_pii(joined, config):
        item = joined[start:end]
        row = bisect.bisect_right(starts, start) - 1
        if found[row] is None and item.casefold() not in config.keep:
            found[row] = f"{kind}: {item}"
    return view.assign(personal_data=found)


def run_contracts(
    frames: dict[str, pd.DataFrame], params: dict, project_dir: Path, pii_params: dict
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
        view = with_personal_data_found(contract_view(contract, frame), contract, pii_params)
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
