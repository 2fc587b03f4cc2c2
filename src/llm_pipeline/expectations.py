"""Every data contract of the project, as Great Expectations suites, in one place.

A contract runs on a flat view of a dataset: nested fields (conversation turns) are summarised
into columns first (``roles_alternate``, ``ends_with_assistant``), so each rule is one plain
expectation that Data Docs and the report can name. The views are built with array operations
over all rows at once: on a million rows a Python call per row costs more than the suites.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_pipeline.hygiene import records

logger = logging.getLogger(__name__)

# Columns that must hold no personal data: the contract looks again, with the same detectors,
# at what ingest wrote.
NO_PII_LEFT = {
    "documents": ["text"],
    "conversations": ["messages"],
    "preferences": ["prompt", "chosen", "rejected"],
    "validation_set": ["prompt", "reference"],
}
CONTRACTS = ("documents", "conversations", "preferences", "validation_set", "ingest_accounting")
# Between two texts scanned as one string: something no personal-data detector reads across.
_SCAN_SEPARATOR = "\n\x00\n"


def contract_of(dataset: str) -> str:
    """``documents_train`` follows the ``documents`` contract, and so on."""
    for contract in CONTRACTS:
        if dataset.startswith(contract):
            return contract
    raise KeyError(f"No data contract for dataset '{dataset}'")


@dataclass(frozen=True)
class Turns:
    """Every turn of a conversations table in one flat sequence, and how many each row has."""

    roles: np.ndarray  # object array; None where a turn has no role
    contents: list[str]  # "" where a turn has no content
    counts: np.ndarray  # turns per row

    @property
    def starts(self) -> np.ndarray:
        """Index of each row's first turn (where its turns would start, for a row without)."""
        return np.cumsum(self.counts) - self.counts

    @property
    def row_of_turn(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)


def conversation_turns(messages: Sequence[Any]) -> Turns:
    """Flatten a ``messages`` column; a value that is not a list of turns counts as no turns."""
    conversations = [m if isinstance(m, list | tuple | np.ndarray) else () for m in messages]
    turns = list(itertools.chain.from_iterable(conversations))
    return Turns(
        roles=np.array([turn.get("role") for turn in turns], dtype=object),
        contents=[turn.get("content") or "" for turn in turns],
        counts=np.fromiter(map(len, conversations), np.int64, len(conversations)),
    )


def conversation_checks(turns: Turns) -> dict[str, np.ndarray]:
    """Per row: roles alternate user, assistant, ... (after one optional system turn); the
    last turn is the assistant's; the shortest and longest turn in characters (0 if none)."""
    rows, counts, starts = len(turns.counts), turns.counts, turns.starts
    checks = {
        "roles_alternate": np.zeros(rows, dtype=bool),
        "ends_with_assistant": np.zeros(rows, dtype=bool),
        "shortest_turn": np.zeros(rows, dtype=np.int64),
        "longest_turn": np.zeros(rows, dtype=np.int64),
    }
    if len(turns.roles) == 0:
        return checks
    has_turns = counts > 0
    is_user, is_assistant = turns.roles == "user", turns.roles == "assistant"
    # Clipped so a row without turns indexes something; has_turns masks what it reads.
    first, last = np.minimum(starts, len(turns.roles) - 1), np.maximum(starts + counts - 1, 0)
    opens_with_system = has_turns & (turns.roles[first] == "system")
    row_of_turn = turns.row_of_turn
    position = np.arange(len(turns.roles)) - (starts + opens_with_system)[row_of_turn]
    in_order = (position < 0) | np.where(position % 2 == 0, is_user, is_assistant)
    out_of_order = np.bincount(row_of_turn[~in_order], minlength=rows)
    checks["roles_alternate"] = (counts > opens_with_system) & (out_of_order == 0)
    checks["ends_with_assistant"] = has_turns & is_assistant[last]
    lengths = np.fromiter(map(len, turns.contents), np.int64, len(turns.contents))
    checks["shortest_turn"][has_turns] = np.minimum.reduceat(lengths, starts[has_turns])
    checks["longest_turn"][has_turns] = np.maximum.reduceat(lengths, starts[has_turns])
    return checks


def conversation_texts(turns: Turns) -> list[str]:
    """Each conversation's contents joined by spaces: ``records.record_texts`` for a
    conversations table, from turns already flattened."""
    bounds = np.cumsum(turns.counts).tolist()
    contents = turns.contents
    return [" ".join(contents[start:end]) for start, end in itertools.pairwise([0, *bounds])]


def personal_data_found(
    fields: Sequence[tuple[Sequence[Any], np.ndarray | None]], rows: int, pii_params: dict
) -> list[str | None]:
    """Per row: the first item of personal data in its texts (as ``type: text``), else None.

    ``fields`` holds (texts, row of each text, or None when text ``i`` is row ``i``) in the
    order a row reads. The organisation's own details (``pii.keep``) do not count.
    """
    from llm_pipeline.hygiene import pii

    config = pii.PiiConfig.model_validate(pii_params)
    found: list[str | None] = [None] * rows
    for texts, row_of_text in fields:
        # One scan over all texts joined is far cheaper than a call per text.
        texts, joined = _joined(texts)
        spans = pii.find_pii(joined, config)
        if not spans:
            continue
        lengths = np.fromiter(map(len, texts), np.int64, len(texts)) + len(_SCAN_SEPARATOR)
        text_starts = np.cumsum(lengths) - lengths
        text_of_span = np.searchsorted(text_starts, [start for start, _, _ in spans], "right") - 1
        rows_of_spans = text_of_span if row_of_text is None else row_of_text[text_of_span]
        for (start, end, kind), row in zip(spans, rows_of_spans.tolist(), strict=True):
            item = joined[start:end]
            if found[row] is None and item.casefold() not in config.keep:
                found[row] = f"{kind}: {item}"
    return found


def _joined(texts: Sequence[Any]) -> tuple[Sequence[str], str]:
    """``texts`` with anything but a string (a null) as "", and all of them joined."""
    try:
        return texts, _SCAN_SEPARATOR.join(texts)
    except TypeError:
        texts = [text if isinstance(text, str) else "" for text in texts]
        return texts, _SCAN_SEPARATOR.join(texts)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """``frame[name]`` by position; nulls where the table has no such column."""
    if name in frame:
        return frame[name].to_numpy()
    return np.full(len(frame), None, dtype=object)


def contract_view(contract: str, frame: pd.DataFrame, pii_params: dict) -> pd.DataFrame:
    """The flat columns the ``contract`` checks, derived from ``frame``, and for contracts in
    ``NO_PII_LEFT`` ``personal_data``: the first item of personal data still in a row, else
    null."""
    if contract == "ingest_accounting":
        return pd.DataFrame(
            {"id": _column(frame, "source"), "balanced": _column(frame, "balanced").astype(bool)}
        )
    columns: dict[str, Any] = {"id": _column(frame, "id")}
    fields = [(_column(frame, name), None) for name in NO_PII_LEFT.get(contract, [])]
    if contract == "documents":
        columns["text"] = _column(frame, "text")
    elif contract == "conversations":
        turns = conversation_turns(_column(frame, "messages"))
        columns.update(conversation_checks(turns))
        fields = [(turns.contents, turns.row_of_turn)]
    elif contract == "preferences":
        for name in ("prompt", "chosen", "rejected"):
            columns[name] = _column(frame, name)
        chosen, rejected = pd.Series(columns["chosen"]), pd.Series(columns["rejected"])
        columns["chosen_differs"] = (chosen != rejected).to_numpy(dtype=bool)
        columns["origin"] = _column(frame, "origin")
    elif contract == "validation_set":
        for name in ("prompt", "reference"):
            columns[name] = _column(frame, name)
        columns["leaks_into_training"] = (
            _column(frame, "leaks_into_training")
            if "leaks_into_training" in frame
            else np.zeros(len(frame), dtype=bool)
        )
    if contract in NO_PII_LEFT:
        columns["personal_data"] = personal_data_found(fields, len(frame), pii_params)
    # Built in one go, so pandas holds each dtype in one block: no copies to consolidate later.
    return pd.DataFrame(columns)


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
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInSet(
                column="origin", value_set=list(records.PREFERENCE_ORIGINS)
            )
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
    frames: dict[str, pd.DataFrame], params: dict, pii_params: dict, docs_dir: Path
) -> list[dict]:
    """Validate each frame against its contract: one summary per frame, and the Data Docs HTML
    site of them all written to ``docs_dir``.

    An ephemeral context keeps the results in memory, where a file-backed one would rewrite its
    YAML config for every suite and datasource added; Data Docs render from memory just as well.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.update_data_docs_site(
        "local_site",
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    results = []
    for dataset, frame in frames.items():
        contract = contract_of(dataset)
        view = contract_view(contract, frame, pii_params)
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
    return results


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
