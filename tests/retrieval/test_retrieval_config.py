"""The retrieval parameters: every value from the YAML, nothing unknown accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm_pipeline.retrieval.config import RetrievalConfig

VALUES = {
    "enabled": True,
    "top_k": 3,
    "max_words": 200,
    "lexical_weight": 0.1,
    "template": "Use these passages:\n{passages}",
    "past_answers": 2,
    "past_answers_template": "Answers before:\n{answers}",
    "own_answer_in_training": False,
}


def test_explicit_values_are_accepted():
    assert RetrievalConfig(**VALUES).top_k == 3


@pytest.mark.parametrize("field", sorted(VALUES))
def test_every_field_is_required(field):
    values = {k: v for k, v in VALUES.items() if k != field}

    with pytest.raises(ValidationError, match=field):
        RetrievalConfig(**values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k_typo": 3}, "Extra inputs are not permitted"),
        ({"lexical_weight": 1.5}, "less than or equal to 1"),
        ({"top_k": -1}, "greater than or equal to 0"),
        ({"top_k": 0, "past_answers": 0}, "nothing would go into the prompt"),
        ({"template": "Use these passages."}, "needs a '{passages}' field"),
        ({"template": "{passages} for {customer}"}, "only use the '{passages}' field"),
        ({"past_answers": -1}, "greater than or equal to 0"),
        ({"past_answers_template": "Earlier answers."}, "needs a '{answers}' field"),
    ],
)
def test_bad_values_are_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        RetrievalConfig(**{**VALUES, **change})


def test_past_answers_alone_or_retrieval_off_need_no_passages():
    assert RetrievalConfig(**{**VALUES, "top_k": 0, "past_answers": 2}).top_k == 0
    assert not RetrievalConfig(
        **{**VALUES, "enabled": False, "top_k": 0, "past_answers": 0}
    ).enabled
