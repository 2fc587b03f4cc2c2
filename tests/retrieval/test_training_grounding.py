"""Training chats are grounded as a new question would be: without their own past-question key,
and with their passages in a shuffled order (real MiniLM embeddings)."""

from __future__ import annotations

import pytest
from support import SHOP_PASSAGES

from llm_pipeline.retrieval.config import RetrievalConfig
from llm_pipeline.retrieval.conversations import ground_conversations, grounding
from llm_pipeline.retrieval.index import PassageIndex

CONFIG = RetrievalConfig(
    enabled=True, top_k=3, max_words=120, lexical_weight=0.0, template="Passages:\n{passages}"
)
PASSAGES = SHOP_PASSAGES
# A past question whose answer came from the refunds passage, though its words are the store's.
PAST_QUESTION = "Is the Portland store open on Saturday evenings?"
PAST_ANSWER = "Refunds are issued to the original payment method within 5 business days."


@pytest.fixture(scope="module")
def index() -> PassageIndex:
    return PassageIndex.build(PASSAGES, None, CONFIG, questions=[(PAST_QUESTION, PAST_ANSWER)])


def test_a_question_finds_its_own_key_first_unless_left_out(index):
    assert [key["passage"] for key in index.keys] == [0]

    as_asked = index.search([PAST_QUESTION], k=1)[0]
    left_out = index.search([PAST_QUESTION], k=1, leave_own_out=True)[0]

    assert as_asked[0]["id"] == "doc#1"
    assert left_out[0]["id"] == "doc#4"


def test_a_question_that_is_not_a_key_ranks_the_same_either_way(index):
    question = ["When does my refund arrive?"]

    assert index.search(question, k=4) == index.search(question, k=4, leave_own_out=True)


def test_training_chats_get_the_same_passages_in_a_shuffled_order_stable_across_calls(index):
    chats = [
        [{"role": "user", "content": f"Question {n}: how long do refunds take to arrive?"}]
        for n in range(12)
    ]

    served = ground_conversations(chats, index, 3, CONFIG.template)
    trained = ground_conversations(chats, index, 3, CONFIG.template, training=True)
    again = ground_conversations(chats, index, 3, CONFIG.template, training=True)

    def passage_lines(chat: list[dict]) -> list[str]:
        return chat[0]["content"].splitlines()[1:]

    assert trained == again
    for served_chat, trained_chat in zip(served, trained, strict=True):
        assert trained_chat[1:] == served_chat[1:]
        assert sorted(line[3:] for line in passage_lines(trained_chat)) == sorted(
            line[3:] for line in passage_lines(served_chat)
        )
    orders = {tuple(line[3:] for line in passage_lines(chat)) for chat in trained}
    assert len(orders) > 1
    assert any(passage_lines(t) != passage_lines(s) for t, s in zip(trained, served, strict=True))


def test_grounding_for_training_leaves_own_keys_out(index, tmp_path):
    index.save(tmp_path / "index")
    params = {**CONFIG.model_dump(), "top_k": 1}
    chat = [[{"role": "user", "content": PAST_QUESTION}]]

    served = grounding(tmp_path / "index", params)(chat)[0][0]["content"]
    trained = grounding(tmp_path / "index", params, training=True)(chat)[0][0]["content"]

    assert served.splitlines()[1].startswith("[1] Shop > Refunds")
    assert trained.splitlines()[1].startswith("[1] Shop > Store")
