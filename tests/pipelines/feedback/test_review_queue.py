"""The review queue: answer pairs in a random order, one per prompt with two different answers."""

from __future__ import annotations

from llm_pipeline.pipelines.feedback.review_queue import review_pairs

PROMPTS = ["How long does shipping take?", "Can I return shoes?", "Where is my order?"]
ANSWERS = [
    ["3-5 business days.", "No idea."],
    ["Yes, within 30 days.", "Ask someone else."],
    ["Track it with the link we sent.", "Somewhere <b>out</b> there."],
]


def test_review_pairs_shuffle_positions_and_skip_prompts_without_two_answers():
    rows = review_pairs([*PROMPTS, "Hi?"], [*ANSWERS, ["Hello.", "Hello."]], "sft", seed=3)
    assert [row["prompt"] for row in rows] == PROMPTS
    for row, answers in zip(rows, ANSWERS, strict=True):
        assert {row["answer_a"], row["answer_b"]} == set(answers)
    firsts = {review_pairs(PROMPTS, ANSWERS, "sft", seed)[0]["answer_a"] for seed in range(8)}
    assert firsts == set(ANSWERS[0])  # either answer can be A
    assert review_pairs(PROMPTS, ANSWERS, "sft", seed=3) == rows
    assert len({row["id"] for row in rows}) == 3
