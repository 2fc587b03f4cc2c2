"""Recall@k: a question counts when its top k passages hold the facts of its context."""

from __future__ import annotations

import pytest

from llm_pipeline.pipelines.evaluate.recall import answering_passages, holds_facts, recall_at_k

REFUND = "Refunds are issued to the original payment method within 5 business days."
PASSAGES = [
    {"id": "p1", "source": "s", "title": "Returns", "text": f"Returns > Refund timing: {REFUND}"},
    {"id": "p2", "source": "s", "title": "Shipping", "text": "Shipping: Standard costs $5.95."},
    {"id": "p3", "source": "s", "title": "Returns", "text": "Returns: Refunds are issued fast."},
]


class RankedIndex:
    """An index stand-in that returns fixed rankings (passage ids per question)."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.passages = PASSAGES
        self.rankings = rankings
        self.asked: list[str] = []

    def search(self, queries: list[str], k: int) -> list[list[dict]]:
        by_id = {p["id"]: p for p in PASSAGES}
        self.asked += queries
        return [[by_id[i] for i in self.rankings[q][:k]] for q in queries]


def test_a_passage_holds_the_facts_when_it_has_most_of_their_content_words():
    assert holds_facts(REFUND, f"- {REFUND.upper()}\n(see the returns portal)")
    assert holds_facts(REFUND, REFUND.replace("original ", ""))  # 7 of 8 content words
    assert not holds_facts(REFUND, REFUND.replace("original payment ", ""))  # 6 of 8
    assert not holds_facts(REFUND, "Refunds are issued fast.")
    assert answering_passages(REFUND, PASSAGES) == ["p1"]


def test_recall_is_one_when_the_answering_passage_is_in_the_top_k_and_zero_otherwise():
    index = RankedIndex({"When is my refund?": ["p3", "p2", "p1"], "Refund time?": ["p1"]})

    at_1 = recall_at_k(index, ["When is my refund?", "Refund time?"], [REFUND, REFUND], k=1)
    at_3 = recall_at_k(index, ["When is my refund?", "Refund time?"], [REFUND, REFUND], k=3)

    assert at_1 == [0.0, 1.0]
    assert at_3 == [1.0, 1.0]


def test_questions_without_a_context_are_left_out():
    index = RankedIndex({"Refund time?": ["p1"]})

    values = recall_at_k(index, ["Hello?", "Refund time?", "Hi"], [None, REFUND, " "], k=1)

    assert values == [1.0]
    assert index.asked == ["Refund time?"]


def test_facts_no_passage_holds_score_zero_and_are_reported(caplog):
    index = RankedIndex({"Warranty?": ["p1", "p2", "p3"]})

    values = recall_at_k(index, ["Warranty?"], ["A lifetime warranty covers backpacks."], k=3)

    assert values == [0.0]
    assert "held by no passage" in caplog.text


def test_questions_and_contexts_must_pair_up():
    with pytest.raises(ValueError, match="2 questions for 1 contexts"):
        recall_at_k(RankedIndex({}), ["a", "b"], [REFUND], k=1)


@pytest.mark.slow
def test_the_evaluate_stage_measures_past_answer_recall_beside_passage_recall(tmp_path):
    import pandas as pd
    from support import SHOP_PASSAGES, parameters_of, small_evaluate_params

    from llm_pipeline.pipelines.evaluate.nodes import measure_retrieval
    from llm_pipeline.retrieval import PassageIndex, RetrievalConfig
    from llm_pipeline.training.folders import Folder

    retrieval = parameters_of("retrieval", past_answers=2)
    questions = [
        ("When will my refund arrive?", "Refunds take 5 business days."),
        ("Is the Portland store open on Saturday?", "Yes, from 10am to 6pm."),
    ]
    config = RetrievalConfig.model_validate(retrieval)
    PassageIndex.build(SHOP_PASSAGES, None, config, questions).save(tmp_path / "index")
    validation = pd.DataFrame(
        {
            "prompt": ["How long until I see my refund?", "Are you open on Saturdays?"],
            "reference": ["Refunds take 5 business days.", "Yes, from 10am to 6pm."],
            "context": ["Refunds take 5 business days.", "Open Saturday 10am to 6pm."],
        }
    )

    measured = measure_retrieval(
        validation, Folder(tmp_path / "index"), small_evaluate_params(), retrieval
    )

    assert measured["past_answers"] == 2
    assert measured["past_answer_recall_at_1"]["value"] == 1.0
    assert measured["past_answer_recall_at_1"]["n"] == 2
    assert {"recall_at_1", "recall_at_3", "past_answer_recall_at_3"} <= set(measured)
