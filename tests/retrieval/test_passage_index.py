"""The passage index: fused ranking, plain-file save and load, search with the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import SHOP_PASSAGES, retrieval_config

from llm_pipeline.retrieval.classifier import AnswerClassifier
from llm_pipeline.retrieval.index import (
    PACKAGED_MODEL,
    PassageIndex,
    default_key_votes,
    fuse,
    past_answer_pairs,
    votes,
)
from llm_pipeline.retrieval.lexical import BM25

CONFIG = retrieval_config(top_k=2, max_words=120, lexical_weight=0.3)
PASSAGES = SHOP_PASSAGES


def index_without_model(embeddings: np.ndarray | None = None) -> PassageIndex:
    """An index over PASSAGES with made-up embeddings: everything but query encoding."""
    rng = np.random.default_rng(0)
    if embeddings is None:
        embeddings = rng.normal(size=(len(PASSAGES), 8)).astype(np.float32)
    texts = [p["text"] for p in PASSAGES]
    return PassageIndex(PASSAGES, embeddings, CONFIG, PACKAGED_MODEL, BM25(texts, 1.2, 0.75))


def test_fusion_mixes_min_max_normalised_scores_by_the_lexical_weight():
    dense = np.array([[0.9, 0.5, 0.1]])
    lexical = np.array([[0.0, 4.0, 8.0]])

    assert fuse(dense, lexical, 0.0).tolist() == [[1.0, 0.5, 0.0]]
    assert fuse(dense, lexical, 1.0).tolist() == [[0.0, 0.5, 1.0]]
    assert fuse(dense, lexical, 0.25).tolist() == [[0.75, 0.5, 0.25]]
    assert fuse(dense, np.zeros((1, 3)), 0.5).tolist() == [[0.5, 0.25, 0.0]]


def test_top_passages_are_best_first_with_their_score_and_ties_in_passage_order():
    index = index_without_model()

    [ranking] = index.top_passages(np.array([[0.2, 0.9, 0.2, 0.5]]), k=3)

    assert [p["id"] for p in ranking] == ["doc#2", "doc#4", "doc#1"]
    assert [p["score"] for p in ranking] == [0.9, 0.5, 0.2]
    assert set(ranking[0]) == {"id", "source", "title", "text", "score"}


def test_save_writes_plain_files_that_load_back_to_the_same_index(tmp_path):
    index = index_without_model()
    folder = tmp_path / "passage_index"

    index.save(folder)
    loaded = PassageIndex.load(folder)

    assert sorted(p.name for p in folder.iterdir()) == [
        "answer_embeddings.npy",
        "answers.jsonl",
        "embeddings.npy",
        "index.json",
        "key_embeddings.npy",
        "keys.jsonl",
        "passages.jsonl",
    ]
    settings = json.loads((folder / "index.json").read_text())
    assert settings["embedding_model"] == PACKAGED_MODEL
    assert settings["retrieval"]["lexical_weight"] == 0.3
    assert settings["bm25"]["k1"] == 1.2
    assert settings["key_votes"] == default_key_votes()
    assert loaded.key_votes == index.key_votes
    assert np.load(folder / "embeddings.npy", allow_pickle=False).dtype == np.float32
    assert loaded.passages == PASSAGES
    assert np.array_equal(loaded.embeddings, index.embeddings)
    assert loaded.config == CONFIG
    for query in ("express shipping to a PO box", "gift card", "nothing known"):
        assert np.array_equal(loaded.bm25.scores(query), index.bm25.scores(query))


def older_index(folder: Path, version: int) -> Path:
    """An index saved as format ``version`` wrote it: 4 had no answer classifier, 3 no past
    answers, 2 no key votes."""
    index_without_model().save(folder)
    settings = json.loads((folder / "index.json").read_text())
    settings["format_version"] = version
    del settings["answer_classifier"]
    if version == 4:
        (folder / "index.json").write_text(json.dumps(settings))
        return folder
    del settings["answers"]
    for field in ("past_answers", "past_answers_template"):
        del settings["retrieval"][field]
    (folder / "answers.jsonl").unlink()
    (folder / "answer_embeddings.npy").unlink()
    if version < 3:
        del settings["key_votes"]
    (folder / "index.json").write_text(json.dumps(settings))
    return folder


def test_an_index_of_the_format_before_key_votes_loads_and_searches_without_them(tmp_path):
    assert PassageIndex.load(older_index(tmp_path / "index", 2)).key_votes["weight"] == 0.0


def test_an_index_of_the_format_before_past_answers_loads_and_gives_none(tmp_path):
    loaded = PassageIndex.load(older_index(tmp_path / "index", 3))

    assert loaded.answers == [] and loaded.config.past_answers == 0
    assert loaded.past_answers(["any question"], 3) == [[]]
    assert loaded.key_votes == default_key_votes()


def test_past_answers_are_kept_once_without_courtesies_or_the_customer_s_name():
    pairs = past_answer_pairs(
        [
            ("Hi, I'm Ann. How long do refunds take? Thanks!", "Hi Ann! Refunds take 5 days."),
            ("How long do refunds take?", "Hello there, Refunds take 5 days."),
            ("Thanks!", "You're welcome."),  # a question of courtesies only stays as it is
            ("Do you ship to Canada?", ""),  # no answer: left out
        ]
    )

    assert pairs == [
        {"question": "How long do refunds take?", "text": "Refunds take 5 days."},
        {"question": "Thanks!", "text": "You're welcome."},
    ]


def test_many_close_keys_outvote_one_slightly_closer_key():
    # One query; keys 0-2 lead to passage 1, key 3 (a little closer) to passage 0.
    by_key = np.array([[0.80, 0.79, 0.78, 0.82]])
    result = votes(by_key, np.array([1, 1, 1, 0]), 3, neighbours=4, temperature=0.1)

    assert result[0, 1] == 1.0  # shares of the best-voted passage
    assert 0.0 < result[0, 0] < 1.0
    assert result[0, 2] == 0.0


def test_only_the_nearest_keys_vote_and_a_left_out_key_gives_nothing():
    by_key = np.array([[0.9, -np.inf, 0.5, 0.1]])
    result = votes(by_key, np.array([0, 1, 2, 3]), 4, neighbours=2, temperature=0.1)

    assert result[0, 0] == 1.0
    assert result[0, 1] == 0.0  # its key was left out (its own question)
    assert result[0, 2] > 0.0
    assert result[0, 3] == 0.0  # not among the 2 nearest


# Two answers, each given to three past questions: refunds near the first axis, Canada near
# the second; the third axis is what only the classifier below reads.
PAST = [{"question": f"refund question {n}", "text": "Refunds take 5 days."} for n in range(3)] + [
    {"question": f"canada question {n}", "text": "We ship to Canada."} for n in range(3)
]
PAST_EMBEDDINGS = np.array(
    [[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0.95, 0, 0.1, 0]]
    + [[0, 1, 0, 0], [0.1, 0.9, 0, 0]] * 1
    + [[0, 0.95, 0.1, 0]],
    dtype=np.float32,
)


def index_with_classifier(weight: float) -> PassageIndex:
    """An index over PASSAGES with PAST as its past answers and a classifier made by hand: it
    gives Canada (answer 1 of the sorted texts) to a question along the third axis, refunds
    otherwise; the training questions' out-of-fold rows are all sure of Canada."""
    embeddings = np.random.default_rng(0).normal(size=(len(PASSAGES), 4)).astype(np.float32)
    texts = [p["text"] for p in PASSAGES]
    classifier = AnswerClassifier(
        weights=np.array([[0, 0, 0, 0], [0, 0, 20.0, 0]]),
        bias=np.array([1.0, 0.0]),
        out_of_fold=np.tile([[0.0, 1.0]], (len(PAST), 1)),
    )
    settings = {"weight": weight, "regularisation": 100.0, "folds": 5, "seed": 0}
    config = CONFIG.model_copy(update={"past_answers": 2})
    return PassageIndex(
        PASSAGES,
        embeddings,
        config,
        PACKAGED_MODEL,
        BM25(texts, 1.2, 0.75),
        None,
        None,
        None,
        PAST,
        PAST_EMBEDDINGS,
        classifier,
        settings,
    )


def past_answers_of(index: PassageIndex, vectors: list[list[float]], **kwargs) -> list[str]:
    """The first past answer of each query given by its embedding (no model is loaded)."""
    queries = [f"query {n}" for n in range(len(vectors))]
    index._last_queries = (queries, np.array(vectors, dtype=np.float32))
    return [found[0]["text"] for found in index.past_answers(queries, 2, **kwargs)]


def test_the_classifier_s_probability_is_added_to_the_votes_by_its_weight():
    # Closest to the refund questions, and along the third axis: the votes say refunds.
    query = [[0.9, 0.0, 0.3, 0.0]]
    refunds, canada = "Refunds take 5 days.", "We ship to Canada."

    assert past_answers_of(index_with_classifier(0.0), query) == [refunds]
    assert past_answers_of(index_with_classifier(5.0), query) == [canada]
    # Off the third axis the classifier agrees with the votes.
    assert past_answers_of(index_with_classifier(5.0), [[1.0, 0.0, 0.0, 0.0]]) == [refunds]
    index = index_with_classifier(5.0)
    index._last_queries = (["q"], np.array(query, dtype=np.float32))
    [found] = index.past_answers(["q"], 2)
    assert found[0]["score"] == 1.0 and 0 < found[1]["score"] < 1


def test_a_training_question_left_out_is_ranked_by_its_out_of_fold_probabilities():
    index = index_with_classifier(5.0)
    # The past question itself: the final fit would say refunds (off the third axis); the
    # out-of-fold row, from a fit that did not see it, says Canada.
    index._last_queries = (["refund question 0"], PAST_EMBEDDINGS[:1])
    [left_out] = index.past_answers(["refund question 0"], 1, leave_own_out=True)
    [as_new] = index.past_answers(["refund question 0"], 1)

    assert left_out[0]["text"] == "We ship to Canada."
    assert as_new[0]["text"] == "Refunds take 5 days."


def test_the_classifier_is_saved_as_plain_arrays_and_an_older_index_has_none(tmp_path):
    index = index_with_classifier(5.0)
    index.save(tmp_path / "index")
    loaded = PassageIndex.load(tmp_path / "index")

    for name in ("weights", "bias", "out_of_fold"):
        assert np.array_equal(getattr(loaded.classifier, name), getattr(index.classifier, name))
        assert (tmp_path / "index" / f"classifier_{name}.npy").exists()
    settings = json.loads((tmp_path / "index" / "index.json").read_text())
    assert settings["format_version"] == 5
    assert settings["answer_classifier"]["weight"] == 5.0
    query = [[0.9, 0.0, 0.3, 0.0]]
    assert past_answers_of(loaded, query) == past_answers_of(index, query)

    older = older_index(tmp_path / "format-4", 4)
    assert PassageIndex.load(older).classifier is None
    # Its retrieval config had no own_answer_in_training: read as it was then, without.
    settings = json.loads((older / "index.json").read_text())
    del settings["retrieval"]["own_answer_in_training"]
    (older / "index.json").write_text(json.dumps(settings))
    assert PassageIndex.load(older).config.own_answer_in_training is False
    without = tmp_path / "without"
    index_without_model().save(without)
    assert json.loads((without / "index.json").read_text())["answer_classifier"] is None
    assert PassageIndex.load(without).classifier is None
    assert not list(without.glob("classifier_*"))


def test_a_classifier_of_other_answers_is_refused():
    index = index_with_classifier(1.0)
    with pytest.raises(ValueError, match="6 past pairs of 2 answers"):
        PassageIndex(
            index.passages,
            index.embeddings,
            index.config,
            PACKAGED_MODEL,
            index.bm25,
            None,
            None,
            None,
            PAST,
            PAST_EMBEDDINGS,
            AnswerClassifier(np.zeros((3, 4)), np.zeros(3), np.zeros((6, 3))),
            {"weight": 1.0},
        )


def test_no_keys_give_no_votes():
    assert not votes(np.zeros((2, 0)), np.array([], dtype=int), 3, 20, 0.1).any()


def test_saving_again_replaces_the_folder_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "passage_index"
    index_without_model().save(folder)
    (folder / "stale.txt").write_text("from an older index")

    index_without_model().save(folder)

    assert not (folder / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["passage_index"]


def test_loading_refuses_embeddings_that_do_not_match_the_passages(tmp_path):
    folder = tmp_path / "passage_index"
    index_without_model().save(folder)
    np.save(folder / "embeddings.npy", np.zeros((3, 8), dtype=np.float32))

    with pytest.raises(ValueError, match=r"index\.json says"):
        PassageIndex.load(folder)


SEARCH_IN_FRESH_PROCESS = """
import json, sys
from llm_pipeline.retrieval import PassageIndex
index = PassageIndex.load(sys.argv[1])
print(json.dumps(index.search(json.loads(sys.argv[2]), k=2)))
"""


@pytest.mark.slow
def test_search_finds_paraphrases_and_a_loaded_index_answers_the_same_in_a_new_process(tmp_path):
    queries = [
        "Hi, I'm Maya. When does the money for my returned item come back? Thanks!",
        "Can express delivery go to my PO box?",
        "What time do you open on Saturday?",
    ]
    index = PassageIndex.build(PASSAGES, None, CONFIG)

    found = index.search(queries, k=2)
    index.save(tmp_path / "index")
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            SEARCH_IN_FRESH_PROCESS,
            str(tmp_path / "index"),
            json.dumps(queries),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )

    assert [ranking[0]["id"] for ranking in found] == ["doc#1", "doc#2", "doc#4"]
    assert all(len(ranking) == 2 for ranking in found)
    reloaded = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert [[p["id"] for p in r] for r in reloaded] == [[p["id"] for p in r] for r in found]
    assert [p["score"] for r in reloaded for p in r] == pytest.approx(
        [p["score"] for r in found for p in r], abs=1e-6
    )


@pytest.mark.slow
def test_past_answers_come_by_the_votes_of_past_questions_and_a_question_can_leave_itself_out(
    tmp_path,
):
    questions = [
        ("Hi, I'm Ann. When will I get my money back?", "Hi Ann! Refunds take 5 days."),
        ("How long does a refund take?", "Hi Bo! Refunds take 5 days."),
        ("How many days until my refund arrives?", "Hi there! Refunds take 5 days."),
        ("Do you deliver to Canada?", "Yes, we ship to Canada within 7 days."),
        ("Can I pay with a gift card?", "Yes, gift cards are accepted at checkout."),
    ]
    config = CONFIG.model_copy(update={"past_answers": 2})
    assert PassageIndex.build(PASSAGES, None, CONFIG, questions).answers == []  # none asked for
    index = PassageIndex.build(PASSAGES, None, config, questions)
    index.save(tmp_path / "index")
    loaded = PassageIndex.load(tmp_path / "index")

    [refund, canada] = loaded.past_answers(
        ["Hello, I'm Cy. When is my refund coming?", "Do you deliver to Canada?"], k=2
    )

    assert refund[0]["text"] == "Refunds take 5 days."  # three questions voted for it
    assert refund[0]["score"] == 1.0 and 0.0 < refund[1]["score"] < 1.0
    assert len({answer["text"] for answer in refund}) == 2
    assert all("Ann" not in answer["text"] for answer in refund)
    assert canada[0] == {
        "question": "Do you deliver to Canada?",
        "text": "Yes, we ship to Canada within 7 days.",
        "score": 1.0,
    }
    # A training question left out: no other question got its answer, so it is not given.
    [alone] = loaded.past_answers(["Do you deliver to Canada?"], k=5, leave_own_out=True)
    assert "Yes, we ship to Canada within 7 days." not in [a["text"] for a in alone]
    [kept] = loaded.past_answers(["How long does a refund take?"], k=1, leave_own_out=True)
    assert kept[0]["text"] == "Refunds take 5 days."  # the others who got it still vote
