"""Passages put into the chat the same way in every stage."""

from __future__ import annotations

import pytest

from llm_pipeline.retrieval.grounding import grounded_messages, query_of

TEMPLATE = "Answer the customer's question using these passages from our documents:\n{passages}"
PASSAGES = [
    {"id": "d#1", "source": "s", "title": "Returns", "text": "Returns: Refunds take\n5 days."},
    {"id": "d#2", "source": "s", "title": "Returns", "text": "Returns: Returns are free."},
]


def test_passages_become_a_numbered_system_turn_before_the_conversation():
    messages = [{"role": "user", "content": "How long do refunds take?"}]

    grounded = grounded_messages(messages, PASSAGES, TEMPLATE)

    assert grounded == [
        {
            "role": "system",
            "content": "Answer the customer's question using these passages from our "
            "documents:\n[1] Returns: Refunds take 5 days.\n[2] Returns: Returns are free.",
        },
        {"role": "user", "content": "How long do refunds take?"},
    ]
    assert messages == [{"role": "user", "content": "How long do refunds take?"}]


def test_an_existing_system_turn_keeps_its_text_and_gets_the_passages_after_it():
    messages = [
        {"role": "system", "content": "You are the Northwind assistant."},
        {"role": "user", "content": "How long do refunds take?"},
    ]

    grounded = grounded_messages(messages, PASSAGES[:1], TEMPLATE)

    assert [m["role"] for m in grounded] == ["system", "user"]
    assert grounded[0]["content"] == (
        "You are the Northwind assistant.\n\nAnswer the customer's question using these "
        "passages from our documents:\n[1] Returns: Refunds take 5 days."
    )
    assert messages[0]["content"] == "You are the Northwind assistant."


def test_past_answers_follow_the_passages_in_the_same_system_turn():
    messages = [{"role": "user", "content": "How long do refunds take?"}]
    answers = [{"question": "When is my money back?", "text": "Refunds take\n5 days.", "score": 1}]

    grounded = grounded_messages(messages, PASSAGES[:1], TEMPLATE, answers, "Before:\n{answers}")

    assert grounded[0] == {
        "role": "system",
        "content": "Answer the customer's question using these passages from our documents:\n"
        "[1] Returns: Refunds take 5 days.\n\n"
        "Before:\n[1] Q: When is my money back? A: Refunds take 5 days.",
    }
    assert grounded[1:] == messages
    # Past answers alone still make the system turn.
    alone = grounded_messages(messages, [], TEMPLATE, answers, "Before:\n{answers}")
    assert alone[0]["content"].startswith("Before:\n[1] Q: When is my money back?")


def test_without_passages_the_messages_are_unchanged():
    messages = [{"role": "user", "content": "Hello"}]

    assert grounded_messages(messages, [], TEMPLATE) == messages


def test_the_query_is_the_last_user_turn():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Do you ship to Japan?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "How long does it take?"},
    ]

    assert query_of(messages) == "How long does it take?"


def test_a_conversation_without_a_user_turn_has_no_query():
    with pytest.raises(ValueError, match="no user turn"):
        query_of([{"role": "system", "content": "Be brief."}])
