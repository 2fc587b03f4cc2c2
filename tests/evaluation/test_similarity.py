"""Semantic similarity with the packaged all-MiniLM-L6-v2 (a real model, loaded offline)."""

from __future__ import annotations

import pytest

from llm_pipeline.evaluation.similarity import cosine_similarities, default_embedding_model

pytestmark = pytest.mark.slow


def test_the_packaged_model_is_a_sentence_transformers_folder_with_safetensors():
    folder = default_embedding_model()

    assert (folder / "modules.json").exists()
    assert (folder / "model.safetensors").exists()


def test_a_paraphrase_is_closer_than_an_unrelated_answer():
    reference = "Returns are free within 30 days of delivery."
    found = cosine_similarities(
        [
            "You can send it back at no cost for a month after it arrives.",
            "Our tents are made of ripstop nylon.",
            reference,
        ],
        [reference] * 3,
    )

    paraphrase, unrelated, same = found
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > unrelated + 0.2
    assert -1.0 <= unrelated < 0.5


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 answers for 1 references"):
        cosine_similarities(["a", "b"], ["a"])
