"""BM25 and the words it counts."""

from __future__ import annotations

import numpy as np
import pytest

from llm_pipeline.retrieval.lexical import BM25, without_courtesies, words

CORPUS = [
    "Standard shipping costs $5.95 and arrives in 3-5 business days.",
    "Refunds are issued to the original payment method within 5 business days.",
    "Express shipping costs $14.95 and is not available to PO boxes.",
    "Gift cards never expire and can be used on any order.",
]


def test_the_passage_sharing_the_rare_words_ranks_first():
    bm25 = BM25(CORPUS, k1=1.2, b=0.75)

    assert int(np.argmax(bm25.scores("Can I ship express to a PO box?"))) == 2
    assert int(np.argmax(bm25.scores("Hi! When do refunds arrive? Thanks!"))) == 1
    assert int(np.argmax(bm25.scores("Do gift cards expire?"))) == 3


def test_a_word_in_every_passage_weighs_less_than_a_rare_one():
    bm25 = BM25(["red tent", "red jacket", "red boots"], k1=1.2, b=0.75)

    common, rare = bm25.scores("red"), bm25.scores("tent")

    assert common.max() < rare.max()
    assert rare[1] == 0.0 and rare[2] == 0.0


def test_a_query_without_known_words_scores_zero_everywhere():
    bm25 = BM25(CORPUS, k1=1.2, b=0.75)

    assert not bm25.scores("Hello, thank you!").any()
    assert not bm25.scores("zebra").any()


def test_words_are_lowercased_without_stop_words():
    assert words("Hi, I'm Maya. How LONG do refunds take?") == ["maya", "long", "refunds", "take"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Hi, I'm Maya. How long do refunds take? Thanks!", "How long do refunds take?"),
        ("Hello, my name is Isla. My tent tore. Thank you.", "My tent tore."),
        ("Hey! Do you ship to Japan? Thanks in advance.", "Do you ship to Japan?"),
        ("Hello there, is express shipping available?", "is express shipping available?"),
        ("Best way to dry boots?", "Best way to dry boots?"),
        ("Thanks!", "Thanks!"),
    ],
)
def test_courtesies_are_dropped_from_a_customer_message(message, expected):
    assert without_courtesies(message) == expected
