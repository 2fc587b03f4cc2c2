"""Answer accuracy: is each answer closer to its own reference than to any other answer's?"""

from __future__ import annotations

import numpy as np
import pytest

from llm_pipeline.evaluation.similarity import answer_accuracy, answer_keys, embed

REFERENCES = [
    "Standard shipping costs $5.95 and is free on orders over $75.",
    "You can return unused items within 30 days of delivery for a full refund.",
    "Gift cards are delivered by email within one hour and never expire.",
    "Our Portland store is open Monday to Saturday from 10 am to 7 pm.",
    "Reset your password with the Forgot password link on the sign-in page.",
    "Hi Maya! You can return unused items within 30 days of delivery for a full refund.",
]
CONTEXTS = ["shipping", "returns", "gift cards", "store", "account", "returns"]


def unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.array(rows, dtype=float)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_examples_sharing_a_context_share_an_answer_key():
    keys = answer_keys(REFERENCES, CONTEXTS)

    assert keys[1] == keys[5]
    assert len(set(keys)) == 5
    by_text = answer_keys(["Same  answer.", "same answer.", "Other."], [None, "", None])
    assert by_text[0] == by_text[1] != by_text[2]


def test_geometry_an_answer_nearest_its_own_reference_is_right():
    references = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    answers = unit([[0.9, 0.1, 0], [0.6, 0.5, 0], [0, 0, 0.0001]])
    answers[2] = 0.0  # an empty answer

    assert answer_accuracy(answers, references, ["a", "b", "c"]) == [1.0, 0.0, 0.0]
    # The second answer's rival shares its key: it no longer competes.
    assert answer_accuracy(answers, references, ["a", "a", "c"]) == [1.0, 1.0, 0.0]


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 answers for 3 references"):
        answer_accuracy(np.ones((2, 3)), np.ones((3, 3)), ["a", "b", "c"])


@pytest.mark.slow
def test_perfect_shuffled_and_constant_answerers_with_the_real_embedding_model():
    keys = answer_keys(REFERENCES, CONTEXTS)
    references = embed(REFERENCES)
    paraphrases = [
        "Shipping is $5.95, and nothing for orders above $75.",
        "Unused things can come back within a month of arrival and you get your money back.",
        "We email gift cards within the hour; they do not expire.",
        "The Portland shop opens 10 to 7, Monday through Saturday.",
        "Click Forgot password when you sign in to set a new one.",
        "Hi Maya, returns of unused items are accepted for 30 days with a full refund.",
    ]
    perfect = answer_accuracy(embed(paraphrases), references, keys)
    shuffled = answer_accuracy(
        embed(paraphrases[1:5] + paraphrases[:1] + ["Hello!"]), references, keys
    )
    constant = answer_accuracy(embed([paraphrases[0]] * 6), references, keys)

    assert perfect == [1.0] * 6
    assert sum(shuffled) == 0.0
    assert constant == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
