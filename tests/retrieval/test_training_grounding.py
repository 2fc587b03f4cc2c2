"""Training chats are grounded as a new question would be: without their own past-question key,
and with their passages in a shuffled order (real MiniLM embeddings)."""

from __future__ import annotations

import pytest
from support import SHOP_PASSAGES, retrieval_config

from llm_pipeline.retrieval.config import RetrievalConfig
from llm_pipeline.retrieval.conversations import ground_conversations, grounding
from llm_pipeline.retrieval.index import PassageIndex

CONFIG = retrieval_config(top_k=3, max_words=120, lexical_weight=0.0)
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


def test_grounding_with_past_answers_gives_them_after_the_passages_and_training_leaves_its_own_out(
    tmp_path, caplog
):
    params = {**CONFIG.model_dump(), "top_k": 1, "past_answers": 2}
    # An index built without past answers gives none, and says why.
    index = PassageIndex.build(PASSAGES, None, CONFIG, questions=[(PAST_QUESTION, PAST_ANSWER)])
    index.save(tmp_path / "without")
    chat = [[{"role": "user", "content": PAST_QUESTION}]]
    assert "\n\nAnswers:" not in grounding(tmp_path / "without", params)(chat)[0][0]["content"]
    assert "holds no past answers" in caplog.text
    config = RetrievalConfig.model_validate(params)
    PassageIndex.build(PASSAGES, None, config, [(PAST_QUESTION, PAST_ANSWER)]).save(
        tmp_path / "index"
    )

    served = grounding(tmp_path / "index", params)(chat)[0][0]["content"]
    trained = grounding(tmp_path / "index", params, training=True)(chat)[0][0]["content"]

    # Served: the passage, then the one past answer (its question asked again).
    assert served.split("\n\n")[1] == f"Answers:\n[1] Q: {PAST_QUESTION} A: {PAST_ANSWER}"
    # Training: its own answer is not given back to it (no other question got that answer).
    assert "\n\nAnswers:" not in trained and PAST_ANSWER not in trained
    # Unless training chats get their own answer (own_answer_in_training): then it is first.
    own = {**params, "own_answer_in_training": True}
    copied = grounding(tmp_path / "index", own, training=True)(chat)[0][0]["content"]
    assert copied.split("\n\n")[1] == f"Answers:\n[1] Q: {PAST_QUESTION} A: {PAST_ANSWER}"
    # It changes nothing outside training.
    assert grounding(tmp_path / "index", own)(chat)[0][0]["content"] == served

    # Past answers alone (top_k 0): no passage, the answer still comes.
    alone = grounding(tmp_path / "index", {**params, "top_k": 0})(chat)[0][0]["content"]
    assert alone == f"Answers:\n[1] Q: {PAST_QUESTION} A: {PAST_ANSWER}"
