"""Data contracts with real Great Expectations suites: what passes, what fails, and how it reads."""

from __future__ import annotations

import pandas as pd
import pytest
from support import parameters_of

from llm_pipeline.pipelines.validate import nodes

LEAKAGE = parameters_of("ingest.leakage", env="base")
PII = parameters_of(
    "ingest.pii", env="base", keep=["help@shop.example"], types=["email", "phone", "card_number"]
)
ACCOUNTING = pd.DataFrame(
    {
        "source": ["a.jsonl"],
        "kind": ["documents"],
        "rows_seen": [2],
        "rows_out": [2],
        "rows_quarantined": [0],
        "balanced": [True],
    }
)
PARAMS = {
    "min_rows": {"preferences_validation": 0},
    "document_chars": {"min": 10, "max": 1000},
    "message_chars": {"min": 1, "max": 500},
    "examples_per_failure": 3,
}


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def good_datasets() -> dict[str, pd.DataFrame]:
    conversations = pd.DataFrame(
        {
            "id": ["conv-1", "conv-2"],
            "messages": [
                [turn("user", "Where is my parcel?"), turn("assistant", "On its way.")],
                [
                    turn("system", "Be brief."),
                    turn("user", "Refund?"),
                    turn("assistant", "Yes."),
                    turn("user", "When?"),
                    turn("assistant", "In 5 days."),
                ],
            ],
        }
    )
    return {
        "documents_train": pd.DataFrame(
            {"id": ["d1", "d2"], "text": ["Shipping is free.", "Returns in 30 days."]}
        ),
        "documents_validation": pd.DataFrame({"id": ["d3"], "text": ["Gift cards never expire."]}),
        "conversations_train": conversations,
        "conversations_validation": conversations.iloc[:1],
        "preferences_train": pd.DataFrame(
            {"id": ["p1"], "prompt": ["Refund?"], "chosen": ["Within 5 days."], "rejected": ["No."]}
        ),
        "preferences_validation": pd.DataFrame(columns=["id", "prompt", "chosen", "rejected"]),
        "validation_set": pd.DataFrame(
            {"id": ["v1"], "prompt": ["Refund?"], "reference": ["Yes."]}
        ),
    }


@pytest.fixture(scope="module")
def passing_report() -> dict:
    report, _ = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, ACCOUNTING, **good_datasets())
    return report


def test_good_data_passes_every_contract(passing_report):
    assert passing_report["success"] is True
    assert {r["dataset"] for r in passing_report["datasets"]} == {
        *good_datasets(),
        "ingest_accounting",
    }
    assert all(r["evaluated_expectations"] >= 3 for r in passing_report["datasets"])
    datasets = good_datasets()
    assert nodes.enforce_data_contracts(passing_report, **datasets).keys() == datasets.keys()


def test_broken_rows_fail_with_dataset_expectation_and_ids():
    datasets = good_datasets()
    datasets["conversations_train"] = pd.DataFrame(
        {
            "id": ["conv-ok", "conv-bad"],
            "messages": [
                [turn("user", "Hi"), turn("assistant", "Hello")],
                [turn("user", "Hi"), turn("assistant", "Hello"), turn("user", "Still there?")],
            ],
        }
    )
    datasets["preferences_train"] = pd.DataFrame(
        {"id": ["p1"], "prompt": ["Refund?"], "chosen": ["Same."], "rejected": ["Same."]}
    )
    datasets["documents_train"] = pd.DataFrame(
        {"id": ["d1", "d1"], "text": ["short", "Long enough text."]}
    )
    report, docs = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, ACCOUNTING, **datasets)
    assert report["success"] is False
    assert (docs.path / "index.html").exists()
    failed = {
        (r["dataset"], f["expectation"], f["column"]): f
        for r in report["datasets"]
        for f in r["failures"]
    }
    ends = failed[
        ("conversations_train", "expect_column_values_to_be_in_set", "ends_with_assistant")
    ]
    assert ends["example_ids"] == ["conv-bad"]
    assert ("preferences_train", "expect_column_values_to_be_in_set", "chosen_differs") in failed
    assert ("documents_train", "expect_column_values_to_be_unique", "id") in failed
    assert ("documents_train", "expect_column_value_lengths_to_be_between", "text") in failed

    with pytest.raises(nodes.DataContractError) as error:
        nodes.enforce_data_contracts(report, **datasets)
    message = str(error.value)
    assert "no training was started" in message
    assert (
        "conversations_train: expect_column_values_to_be_in_set on column 'ends_with_assistant'"
        in message
    )
    assert "conv-bad" in message


def test_an_empty_training_set_fails_its_row_count():
    datasets = good_datasets()
    datasets["preferences_train"] = datasets["preferences_validation"]
    report, _ = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, ACCOUNTING, **datasets)
    failures = next(r for r in report["datasets"] if r["dataset"] == "preferences_train")[
        "failures"
    ]
    assert failures[0]["expectation"] == "expect_table_row_count_to_be_between"
    assert report["success"] is False


def test_personal_data_left_over_leaks_and_unbalanced_accounting_fail():
    datasets = good_datasets()
    datasets["documents_train"] = pd.DataFrame(
        {"id": ["d1"], "text": ["Mail jane@example.com for the refund."]}
    )
    prompt = "Can I return a tent that I have already used on a camping trip last weekend please?"
    datasets["validation_set"] = pd.DataFrame(
        {"id": ["v1"], "prompt": [prompt], "reference": ["No."]}
    )
    datasets["conversations_train"] = pd.DataFrame(
        {"id": ["c1"], "messages": [[turn("user", prompt), turn("assistant", "No.")]]}
    )
    unbalanced = ACCOUNTING.assign(rows_out=1, balanced=False)
    report, _ = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, unbalanced, **datasets)
    failed = {(r["dataset"], f["column"]) for r in report["datasets"] for f in r["failures"]}
    assert ("documents_train", "personal_data") in failed
    assert ("validation_set", "leaks_into_training") in failed
    assert ("ingest_accounting", "balanced") in failed


def test_kept_public_details_do_not_count_as_personal_data_left():
    datasets = good_datasets()
    datasets["documents_train"] = pd.DataFrame(
        {"id": ["d1"], "text": ["Write to HELP@shop.example for anything."]}
    )
    report, _ = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, ACCOUNTING, **datasets)
    assert report["success"] is True


def test_an_empty_table_without_columns_fails_its_row_count_and_nothing_else_breaks():
    """An empty JSON Lines file reads back as a table with no columns at all."""
    datasets = good_datasets()
    datasets["preferences_train"] = pd.DataFrame()
    report, _ = nodes.check_data_contracts(PARAMS, LEAKAGE, PII, ACCOUNTING, **datasets)
    result = next(r for r in report["datasets"] if r["dataset"] == "preferences_train")
    assert result["failures"][0]["expectation"] == "expect_table_row_count_to_be_between"
    assert report["success"] is False


def test_training_texts_are_the_record_texts_of_every_kind():
    from llm_pipeline.hygiene import records

    datasets = good_datasets()
    for kind in ("documents", "conversations", "preferences"):
        frame = datasets[f"{kind}_train"]
        assert nodes.training_texts(kind, frame) == records.record_texts(kind, frame)
        assert nodes.training_texts(kind, pd.DataFrame()) == []


def test_flag_leaks_finds_a_long_prompt_in_a_conversation_and_ignores_short_ones():
    prompt = "Can I return a tent that I have already used on a camping trip last weekend please?"
    datasets = good_datasets()
    datasets["conversations_train"] = pd.DataFrame(
        {"id": ["c1"], "messages": [[turn("user", prompt), turn("assistant", "No.")]]}
    )
    datasets["validation_set"] = pd.DataFrame(
        {"id": ["v1", "v2"], "prompt": [prompt, "Refund?"], "reference": ["No.", "Yes."]}
    )
    flagged = nodes.flag_leaks(datasets, LEAKAGE)
    assert flagged["leaks_into_training"].tolist() == [True, False]
    # A short prompt is no probe: nothing is looked for, even where training repeats it.
    datasets["validation_set"] = datasets["validation_set"].iloc[1:]
    datasets["preferences_train"] = pd.DataFrame(
        {"id": ["p1"], "prompt": ["Refund?"], "chosen": ["Yes."], "rejected": ["No."]}
    )
    assert nodes.flag_leaks(datasets, LEAKAGE)["leaks_into_training"].tolist() == [False]
