"""Ingest nodes on small fixtures: parsing, quarantine, normalisation, duplicates, splits."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llm_pipeline.pipelines.ingest import nodes

PARAMS = {
    "unicode_form": "NFC",
    "document_validation_fraction": 0.5,
    "conversation_validation_fraction": 0.3,
    "preference_validation_fraction": 0.3,
    "split_salt": "test",
}


def files(**contents: bytes) -> dict:
    return {name: (lambda data=data: data) for name, data in contents.items()}


def jsonl(*records: object) -> bytes:
    return "\n".join(json.dumps(r) if not isinstance(r, str) else r for r in records).encode()


def test_normalise_text_unifies_unicode_spaces_and_line_endings():
    text = "Cafe\u0301  opens\t at 9\r\n\r\n\r\n\r\nClosed   Sundays  "
    assert nodes.normalise_text(text) == "Café opens at 9\n\nClosed Sundays"


def test_documents_from_every_format_and_bad_rows_quarantined_with_file_line_rule():
    raw = files(
        **{
            "docs/a.md": b"# Shipping\n\nStandard shipping takes 3-5 days.",
            "docs/b.txt": b"Returns within 30 days.",
            "docs/c.jsonl": jsonl({"text": "Gift cards never expire."}, "{not json", {"t": 1}),
            "docs/d.txt": b"\xff\xfe broken",
            "docs/e.txt": b"   ",
        }
    )
    documents, quarantine = nodes.read_documents(raw, PARAMS)
    assert sorted(documents["source"]) == ["docs/a.md", "docs/b.txt", "docs/c.jsonl"]
    assert documents["id"].is_unique
    rules = {(q.source, q.line, q.rule) for q in quarantine.itertuples()}
    assert rules == {
        ("docs/c.jsonl", 2, "malformed_json"),
        ("docs/c.jsonl", 3, "schema"),
        ("docs/d.txt", 1, "invalid_utf8"),
        ("docs/e.txt", 1, "empty"),
    }


def test_exact_duplicates_after_normalisation_are_quarantined_and_the_first_is_kept():
    raw = files(
        **{
            "a.jsonl": jsonl({"text": "Free  shipping over $50."}, {"text": "Other text here."}),
            "b.txt": b"Free shipping over $50.   ",
        }
    )
    documents, quarantine = nodes.read_documents(raw, PARAMS)
    assert len(documents) == 2
    assert list(quarantine["rule"]) == ["duplicate"]
    assert quarantine.iloc[0]["source"] == "b.txt"
    assert "a.jsonl line 1" in quarantine.iloc[0]["detail"]


def test_every_row_read_is_in_the_output_or_the_quarantine():
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(20)
    ]
    lines += [
        {"prompt": "p", "response": "r"},
        {"prompt": "p", "response": "r"},
        "oops",
        {"messages": []},
    ]
    conversations, quarantine = nodes.read_conversations(
        files(**{"c.jsonl": jsonl(*lines)}), PARAMS
    )
    assert len(conversations) + len(quarantine) == len(lines)
    assert sorted(conversations["line"].tolist() + quarantine["line"].tolist()) == list(
        range(1, 25)
    )


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "end with an assistant"),
        (
            {
                "messages": [
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "x"},
                ]
            },
            "alternate",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "alternate",
        ),
        ({"messages": [{"role": "robot", "content": "a"}]}, "needs a role"),
        ({"messages": [{"role": "user", "content": " "}]}, "no content"),
        ({"prompt": "only a prompt"}, "'prompt' and 'response'"),
    ],
)
def test_conversation_schema_rules(record, reason):
    messages, why = nodes.conversation_messages(record)
    assert messages is None
    assert reason in why


def test_prompt_response_and_system_messages_are_accepted():
    messages, _ = nodes.conversation_messages({"prompt": "Where?", "response": "Here."})
    assert [m["role"] for m in messages] == ["user", "assistant"]
    system = {"role": "system", "content": "Be kind."}
    turns = [system, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert nodes.conversation_messages({"messages": turns})[0] == turns


def test_preferences_with_identical_answers_are_quarantined():
    raw = files(
        **{
            "p.jsonl": jsonl(
                {"prompt": "q", "chosen": "good", "rejected": "bad"},
                {"prompt": "q", "chosen": "same", "rejected": "same"},
                {"prompt": "q", "chosen": "good"},
            )
        }
    )
    preferences, quarantine = nodes.read_preferences(raw, PARAMS)
    assert len(preferences) == 1
    assert sorted(quarantine["rule"]) == ["identical_pair", "schema"]


def conversation_frame(count: int) -> pd.DataFrame:
    rows = []
    for i in range(count):
        messages = [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
        rows.append(
            {"id": f"conv-{i:04d}", "source": "c.jsonl", "line": i + 1, "messages": messages}
        )
    return pd.DataFrame(rows)


def test_split_is_deterministic_disjoint_and_complete():
    frame = conversation_frame(200)
    empty = pd.DataFrame(columns=["id", "prompt", "reference", "context", "messages"])
    train, held_out, validation = nodes.split_conversations(frame, empty, PARAMS)
    again = nodes.split_conversations(frame, empty, PARAMS)
    assert train["id"].tolist() == again[0]["id"].tolist()
    assert set(train["id"]).isdisjoint(held_out["id"])
    assert len(train) + len(held_out) == 200
    assert 30 < len(held_out) < 90
    assert len(validation) == len(held_out)
    first = validation.iloc[0]
    assert first["reference"].startswith("answer")
    assert first["messages"][-1]["role"] == "user"


def test_explicit_validation_examples_replace_the_conversation_split():
    raw = files(
        **{
            "v.jsonl": jsonl(
                {"prompt": "How long?", "reference": "Three days.", "context": "Ships in 3 days."}
            )
        }
    )
    explicit, quarantine = nodes.read_validation_examples(raw, PARAMS)
    assert quarantine.empty
    _, _, validation = nodes.split_conversations(conversation_frame(50), explicit, PARAMS)
    assert validation["prompt"].tolist() == ["How long?"]
    assert validation.iloc[0]["context"] == "Ships in 3 days."


def test_gather_quarantine_orders_by_file_and_line_and_keeps_columns_when_empty():
    empty = pd.DataFrame(columns=nodes.QUARANTINE_COLUMNS)
    assert list(nodes.gather_quarantine(empty, empty).columns) == nodes.QUARANTINE_COLUMNS
    a = pd.DataFrame([nodes.quarantine_entry("b.jsonl", 3, "schema", "x", None)])
    b = pd.DataFrame([nodes.quarantine_entry("a.jsonl", 9, "schema", "x", None)])
    merged = nodes.gather_quarantine(a, empty, b)
    assert merged["source"].tolist() == ["a.jsonl", "b.jsonl"]
