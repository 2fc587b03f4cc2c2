"""Data contracts at scale: the validate stage's contract check on one million rows.

    .venv/bin/python bench/validate.py [--rows 1000000]

Builds documents, conversations and preference pairs adding up to ``--rows`` rows, runs every
contract (Great Expectations suites, leakage re-check, accounting, Data Docs) and prints the
seconds as its last line (goal: under 10). The validation prompt is long enough (``min_words``)
to be looked for, so the leakage scan over all training rows is part of what is timed.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import yaml

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"


def frames(rows: int) -> dict[str, pd.DataFrame]:
    documents, conversations = int(rows * 0.4), int(rows * 0.4)
    preferences = rows - documents - conversations
    turn = [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It ships within 3 business days."},
    ]

    def ids(prefix: str, count: int) -> list[str]:
        return [f"{prefix}-{i:08d}" for i in range(count)]

    # The number in a text stays under 7 digits at any --rows, so that every row costs the same:
    # from 7 digits on, each distinct number is a phone-number candidate for the PII re-check
    # (about 20 us each), which made 4M rows 6.3x as slow as 1M instead of 4x.
    document_texts = [
        f"Document {i % 1_000_000}: standard shipping takes 3-5 business days."
        for i in range(documents)
    ]
    return {
        "documents_train": pd.DataFrame({"id": ids("doc", documents), "text": document_texts}),
        "documents_validation": pd.DataFrame({"id": ["doc-v"], "text": ["A held-out document."]}),
        "conversations_train": pd.DataFrame(
            {"id": ids("conv", conversations), "messages": [turn] * conversations}
        ),
        "conversations_validation": pd.DataFrame({"id": ["conv-v"], "messages": [turn]}),
        "preferences_train": pd.DataFrame(
            {
                "id": ids("pref", preferences),
                "prompt": ["Where is my order?"] * preferences,
                "chosen": ["It ships within 3 business days."] * preferences,
                "rejected": ["No idea."] * preferences,
            }
        ),
        "preferences_validation": pd.DataFrame(columns=["id", "prompt", "chosen", "rejected"]),
        "validation_set": pd.DataFrame(
            {
                "id": ["val-1"],
                "prompt": ["How fast is express delivery to Canada for a small parcel?"],
                "reference": ["Two days."],
            }
        ),
    }


def main() -> None:
    import great_expectations  # noqa: F401  (its import, ~4 s, is start-up, not contract work)

    from llm_pipeline.pipelines.validate.nodes import check_data_contracts

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    params = yaml.safe_load((CONF / "parameters_validate.yml").read_text())["validate"]
    ingest = yaml.safe_load((CONF / "parameters_ingest.yml").read_text())["ingest"]
    datasets = frames(args.rows)
    accounting = pd.DataFrame(
        {
            "source": ["a.jsonl"],
            "kind": ["documents"],
            "rows_seen": [1],
            "rows_out": [1],
            "rows_quarantined": [0],
            "balanced": [True],
        }
    )
    start = time.perf_counter()
    report, docs = check_data_contracts(
        params, ingest["leakage"], ingest["pii"], accounting, **datasets
    )
    seconds = time.perf_counter() - start
    rows = sum(len(frame) for frame in datasets.values())
    print(f"rows: {rows}, contracts passed: {report['success']}, data docs: {docs.path}")
    print(f"{seconds:.2f}")


if __name__ == "__main__":
    main()
