"""The data report of an ingest: what came in, what went out, what was refused, and why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llm_pipeline.hygiene import raw_files

LENGTH_BINS = [0, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 1_000_000_000]


def _lengths(kind: str, frame: pd.DataFrame) -> list[int]:
    if not len(frame):
        return []
    if kind == "documents":
        return [len(text) for text in frame["text"]]
    if kind == "conversations":
        return [len(turn["content"]) for turns in frame["messages"] for turn in turns]
    if kind == "preferences":
        return [len(text) for column in ("prompt", "chosen", "rejected") for text in frame[column]]
    return [len(text) for text in frame["reference"]]


def length_histogram(outputs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Characters per text, binned, per kind: what ``dvc plots`` draws."""
    return histogram_table({kind: length_counts(kind, frame) for kind, frame in outputs.items()})


def length_counts(kind: str, frame: pd.DataFrame) -> np.ndarray:
    """How many texts of ``frame`` fall in each of ``LENGTH_BINS``."""
    counts, _ = np.histogram(_lengths(kind, frame), bins=LENGTH_BINS)
    return counts


def histogram_table(counts_by_kind: dict[str, np.ndarray]) -> pd.DataFrame:
    """``length_histogram``'s table from the counts per bin of each kind."""
    rows = []
    for kind, counts in counts_by_kind.items():
        for start, count in zip(LENGTH_BINS[:-1], counts, strict=True):
            rows.append({"kind": kind, "length_from": start, "texts": int(count)})
    return pd.DataFrame(rows, columns=["kind", "length_from", "texts"])


def html_pages_read_as(accounting: pd.DataFrame) -> dict[str, int]:
    """How many HTML pages gave their main content, and how many (none found) their whole
    visible text."""
    counts = accounting["html_text_from"].value_counts()
    return {way: int(counts.get(way, 0)) for way in ("main_content", "whole_page")}


def summarise(
    outputs: dict[str, pd.DataFrame],
    quarantine: pd.DataFrame,
    accounting: pd.DataFrame,
    hygiene: dict[str, Any],
) -> dict[str, Any]:
    """Counts per kind, source and category, rates of duplicates and personal data."""
    kinds = {kind: kind_counts(frame) for kind, frame in outputs.items()}
    return summary_of(kinds, quarantine_counts(quarantine), accounting, hygiene)


def counts_by(table: pd.DataFrame, column: str) -> dict[str, int]:
    """Rows of ``table`` per value of ``column`` (values in order), as plain Python values;
    an empty table (which may lack the column) has none."""
    if not len(table):
        return {}
    return {str(k): int(n) for k, n in table.groupby(column).size().items()}


def kind_counts(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows of a kind's table, in all and per source and category (keys in order)."""
    return {
        "rows": len(frame),
        "by_source": counts_by(frame, "source"),
        "by_category": counts_by(frame, "category"),
    }


def quarantine_counts(quarantine: pd.DataFrame) -> dict[str, Any]:
    """Quarantined rows per rule (in order), and the files refused before being opened."""
    return {
        "by_rule": counts_by(quarantine, "rule"),
        "files_not_opened": _files_not_opened(quarantine),
    }


def summary_of(
    kinds: dict[str, Any],
    quarantined: dict[str, Any],
    accounting: pd.DataFrame,
    hygiene: dict[str, Any],
) -> dict[str, Any]:
    """``summarise`` from each kind's ``kind_counts`` and the ``quarantine_counts``."""
    duplicates = hygiene["duplicates"]
    pii_found = hygiene["pii"]
    rows_read = {kind: counts["rows"] for kind, counts in duplicates.items()}
    return {
        "kinds": kinds,
        "rows_in": int(accounting["rows_seen"].sum()),
        "rows_out": int(accounting["rows_out"].sum()),
        "rows_quarantined": int(accounting["rows_quarantined"].sum()),
        "every_row_accounted_for": bool(accounting["balanced"].all()),
        "quarantined_by_rule": quarantined["by_rule"],
        "files_not_opened": quarantined["files_not_opened"],
        "duplicates": duplicates,
        "duplicate_rate": {
            kind: (c["exact"] + c["near"]) / c["rows"] if c["rows"] else 0.0
            for kind, c in duplicates.items()
        },
        "pii_found": pii_found,
        "pii_rate_per_1000_rows": {
            kind: 1000 * sum(found.values()) / rows_read[kind] if rows_read.get(kind) else 0.0
            for kind, found in pii_found.items()
        },
        "boilerplate_lines_removed": hygiene["cleaning"]["boilerplate_lines"],
        "html_pages_read_as": html_pages_read_as(accounting),
        "validation_leaks": hygiene["leakage"],
    }


def _files_not_opened(quarantine: pd.DataFrame) -> dict[str, Any]:
    """Raw files refused before being opened (links out of the folder, hard links, FIFOs,
    devices): how many per rule, and which."""
    if not len(quarantine):
        return {"count": 0, "by_rule": {}, "files": []}
    refused = quarantine[quarantine["rule"].isin(raw_files.REFUSAL_RULES)]
    return {
        "count": len(refused),
        "by_rule": counts_by(refused, "rule"),
        "files": [
            {"source": row.source, "rule": row.rule, "detail": row.detail}
            for row in refused.itertuples()
        ],
    }


def plot(summary: dict[str, Any], histogram: pd.DataFrame) -> Any:
    """Four panels: rows per kind, text lengths, quarantine by rule, personal data by type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    kinds = summary["kinds"]
    axes[0, 0].bar(list(kinds), [k["rows"] for k in kinds.values()], color="#4c72b0")
    axes[0, 0].set_title("Rows out, per kind")
    for kind, group in histogram.groupby("kind"):
        labels = [f"{x:,}" for x in group["length_from"]]
        axes[0, 1].plot(labels, group["texts"], marker="o", label=kind)
    axes[0, 1].set_title("Text length (characters, from)")
    axes[0, 1].tick_params(axis="x", rotation=45)
    axes[0, 1].legend()
    rules = summary["quarantined_by_rule"] or {"none": 0}
    axes[1, 0].barh(list(rules), list(rules.values()), color="#dd8452")
    axes[1, 0].set_title("Quarantined rows, per rule")
    by_type: dict[str, int] = {}
    for found in summary["pii_found"].values():
        for kind, count in found.items():
            by_type[kind] = by_type.get(kind, 0) + count
    by_type = by_type or {"none": 0}
    axes[1, 1].bar(list(by_type), list(by_type.values()), color="#55a868")
    axes[1, 1].set_title("Personal data redacted, per type")
    figure.tight_layout()
    return figure
