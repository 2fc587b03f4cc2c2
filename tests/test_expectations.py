"""The contract views, built with array operations, against a plain per-row reading of the rules;
and a real Great Expectations run whose Data Docs name the failing rule and show examples."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from support import parameters_of

from llm_pipeline import expectations
from llm_pipeline.hygiene import records

PII = parameters_of(
    "ingest.pii", keep=["help@shop.example"], types=["email", "phone", "card_number"]
)
PARAMS = {
    "min_rows": {},
    "document_chars": {"min": 10, "max": 1000},
    "message_chars": {"min": 1, "max": 500},
    "examples_per_failure": 3,
}


def turn(role: str | None, content: str | None) -> dict:
    return {"role": role, "content": content}


def per_row_checks(messages: list[dict]) -> tuple[bool, bool, int, int]:
    """The conversation rules read one row at a time: the reference the arrays must match."""
    roles = [m.get("role") for m in messages]
    lengths = [len(m.get("content") or "") for m in messages]
    dialogue = roles[1:] if roles[:1] == ["system"] else roles
    alternate = bool(dialogue) and all(
        role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(dialogue)
    )
    ends = bool(roles) and roles[-1] == "assistant"
    return alternate, ends, min(lengths, default=0), max(lengths, default=0)


def checks_of(conversations: list) -> list[tuple[bool, bool, int, int]]:
    checks = expectations.conversation_checks(expectations.conversation_turns(conversations))
    columns = ("roles_alternate", "ends_with_assistant", "shortest_turn", "longest_turn")
    return list(zip(*(checks[c].tolist() for c in columns), strict=True))


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([turn("user", "Hi"), turn("assistant", "Hello")], (True, True, 2, 5)),
        (
            [turn("system", "Be brief."), turn("user", "Hi"), turn("assistant", "Yo")],
            (True, True, 2, 9),
        ),
        (
            [turn("user", "Hi"), turn("assistant", "Hello"), turn("user", "Still?")],
            (True, False, 2, 6),
        ),
        ([turn("assistant", "Hello"), turn("user", "Hi")], (False, False, 2, 5)),
        ([turn("user", "Hi"), turn("system", "x"), turn("assistant", "Yo")], (False, True, 1, 2)),
        ([turn("system", "Only a system prompt.")], (False, False, 21, 21)),
        ([turn("user", "Hi"), turn("assistant", None)], (True, True, 0, 2)),
        ([turn(None, "Hi"), turn("assistant", "Yo")], (False, True, 2, 2)),
        ([], (False, False, 0, 0)),
        (None, (False, False, 0, 0)),
    ],
)
def test_conversation_checks_read_each_rule(messages, expected):
    # Between two well-formed rows, so a row's turns are found by position among others.
    good = [turn("user", "Hello there"), turn("assistant", "Hi")]
    assert checks_of([good, messages, good]) == [(True, True, 2, 11), expected, (True, True, 2, 11)]


def test_conversation_checks_match_a_per_row_reading_on_random_conversations():
    rng = random.Random(7)
    roles = ["user", "assistant", "system", None, "tool"]
    conversations = []
    for _ in range(3000):
        messages = [
            turn(
                rng.choice(roles) if rng.random() < 0.3 else ("user", "assistant")[i % 2],
                rng.choice(["", None, "ok", "x" * rng.randint(0, 40)]),
            )
            for i in range(rng.choice([0, 1, 2, 3, 4, 7]))
        ]
        if messages and rng.random() < 0.2:
            messages.insert(0, turn("system", "Be kind."))
        conversations.append(messages)
    expected = [per_row_checks(messages) for messages in conversations]
    assert checks_of(conversations) == expected
    assert len({row[:2] for row in expected}) == 4  # every pass/fail mix was exercised


def test_conversation_texts_are_the_record_texts_of_a_conversations_table():
    conversations = [
        [turn("user", "Where is my parcel?"), turn("assistant", "On its way.")],
        [],
        [turn("system", "Be brief."), turn("user", "Refund?"), turn("assistant", "Yes.")],
    ]
    turns = expectations.conversation_turns(pd.Series(conversations))
    assert expectations.conversation_texts(turns) == records.record_texts(
        "conversations", pd.DataFrame({"messages": conversations})
    )
    assert turns.row_of_turn.tolist() == [0, 0, 2, 2, 2]


def test_personal_data_found_names_the_first_item_of_each_row_and_skips_kept_details():
    prompts = ["Mail me: jane@example.com", "Write to HELP@shop.example", None, "Nothing here."]
    answers = ["Or call +1 415 555 0100", "Card 4111 1111 1111 1111", "bob@example.org", "Fine."]
    found = expectations.personal_data_found([(prompts, None), (answers, None)], 4, PII)
    assert found == [
        "email: jane@example.com",  # the prompt is read before the answer
        "card_number: 4111 1111 1111 1111",  # the organisation's own address does not count
        "email: bob@example.org",  # a null prompt is skipped, not an error
        None,
    ]


def test_personal_data_found_maps_turns_back_to_their_conversation():
    conversations = [
        [turn("user", "Hi"), turn("assistant", "Hello")],
        [turn("user", "My card is 4111 1111 1111 1111"), turn("assistant", "Removed.")],
        [],
        [turn("user", "Hi"), turn("assistant", "Mail ann@example.net")],
    ]
    turns = expectations.conversation_turns(conversations)
    found = expectations.personal_data_found([(turns.contents, turns.row_of_turn)], 4, PII)
    assert found == [None, "card_number: 4111 1111 1111 1111", None, "email: ann@example.net"]


@pytest.mark.parametrize(
    ("contract", "columns"),
    [
        ("documents", ["id", "text", "personal_data"]),
        (
            "conversations",
            [
                "id",
                "roles_alternate",
                "ends_with_assistant",
                "shortest_turn",
                "longest_turn",
                "personal_data",
            ],
        ),
        (
            "preferences",
            ["id", "prompt", "chosen", "rejected", "chosen_differs", "origin", "personal_data"],
        ),
        ("validation_set", ["id", "prompt", "reference", "leaks_into_training", "personal_data"]),
    ],
)
def test_a_table_without_columns_gives_an_empty_view_with_every_checked_column(contract, columns):
    view = expectations.contract_view(contract, pd.DataFrame(), PII)
    assert list(view.columns) == columns
    assert len(view) == 0


def test_views_keep_row_order_whatever_the_index():
    frame = pd.DataFrame(
        {
            "id": ["p1", "p2"],
            "prompt": ["Refund?", "Size?"],
            "chosen": ["Same.", "M."],
            "rejected": ["Same.", "XXL, call 415-555-0100"],
        },
        index=[10, 3],
    )
    view = expectations.contract_view("preferences", frame, {**PII, "types": ["phone"]})
    assert view["id"].tolist() == ["p1", "p2"]
    assert view["chosen_differs"].tolist() == [False, True]
    assert view["personal_data"].tolist() == [None, "phone: 415-555-0100"]
    assert view.index.equals(pd.RangeIndex(2))


def test_run_contracts_data_docs_name_the_failing_expectation_and_show_examples(tmp_path):
    frames = {
        "documents_train": pd.DataFrame(
            {"id": ["d1", "d2", "d3"], "text": ["short", "Long enough text.", "tiny"]}
        )
    }
    [result] = expectations.run_contracts(frames, PARAMS, PII, tmp_path)
    assert result["success"] is False
    [failure] = result["failures"]
    assert failure["expectation"] == "expect_column_value_lengths_to_be_between"
    assert (failure["column"], failure["unexpected_count"]) == ("text", 2)
    assert failure["examples"] == ["short", "tiny"]
    assert failure["example_ids"] == ["d1", "d3"]

    assert (tmp_path / "index.html").exists()
    [page] = (tmp_path / "validations").rglob("documents_train*.html")
    html = page.read_text(encoding="utf-8")
    assert "characters long" in html
    assert "Unexpected Value" in html
    assert "short" in html
    assert "tiny" in html
