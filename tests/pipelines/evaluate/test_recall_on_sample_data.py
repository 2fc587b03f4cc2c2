"""Recall of the passage index on the sample shop's documents and validation questions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import PROJECT_ROOT

from llm_pipeline.pipelines.evaluate.recall import recall_of_rankings
from llm_pipeline.retrieval.config import (
    AnswerClassifierConfig,
    EncoderTuningConfig,
    RetrievalConfig,
)
from llm_pipeline.retrieval.index import PassageIndex, question_answer_pairs, split_passages

pytestmark = pytest.mark.slow

# The project's own retrieval parameters.
PARAMETERS = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_index.yml").read_text())
CONFIG = RetrievalConfig.model_validate(PARAMETERS["retrieval"])
# Half the default's tuning steps: recall@1 0.71 at 10 steps against 0.72 at 20 (0.62 as
# shipped) on the raw sample files, measured 2026-12-07 on a 2-core AMD EPYC host with one
# thread, where the tuned index took 27 s to build against 43 s.
ENCODER = EncoderTuningConfig.model_validate({**PARAMETERS["retrieval_encoder"], "steps": 10})
CLASSIFIER = AnswerClassifierConfig.model_validate(PARAMETERS["answer_classifier"])


def document_rows(folder: Path) -> list[dict]:
    """Documents as ingest reads them: a row per text file, a row per line of a jsonl file."""
    rows = []
    for path in sorted(folder.iterdir()):
        source = f"documents/{path.name}"
        if path.suffix == ".jsonl":
            for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                record = json.loads(text)
                rows.append({"id": f"{path.stem}-{line}", "source": source, "line": line, **record})
        else:
            rows.append({"id": path.stem, "source": source, "line": 1, "text": path.read_text()})
    return rows


def chats(folder: Path) -> list[list[dict]]:
    return [
        json.loads(line)["messages"]
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "messages" in json.loads(line)
    ]


@pytest.fixture(scope="module")
def default_raw_data(tmp_path_factory) -> Path:
    """The sample data at its default scale (640 chats, 100 held-out questions)."""
    from llm_pipeline.cli.sample_data import generate

    root = tmp_path_factory.mktemp("default-raw")
    generate(root, "default", 13)
    return root


@pytest.fixture(scope="module")
def examples(default_raw_data: Path) -> list[dict]:
    """The 100 held-out questions of the raw sample files, each with its context."""
    found = [
        json.loads(line)
        for path in sorted((default_raw_data / "validation").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert sum(bool(example.get("context")) for example in found) == 100
    return found


@pytest.fixture(scope="module")
def indexes(default_raw_data: Path) -> dict[str, PassageIndex]:
    """The sample documents indexed four ways; each embedding pass is made once (MiniLM over
    the passages, keys and past answers is most of this module's time)."""
    raw = default_raw_data
    passages = split_passages(document_rows(raw / "documents"), CONFIG.max_words)
    questions = question_answer_pairs(chats(raw / "conversations"))
    # Past answers kept whatever the default, for the past-answer test below; a search does
    # not read them.
    config = CONFIG.model_copy(update={"past_answers": 3})
    with_keys = PassageIndex.build(passages, None, config, questions)
    # The same index and embeddings, the votes weighed 0.
    without_votes = copy.copy(with_keys)
    without_votes.key_votes = {**with_keys.key_votes, "weight": 0.0}
    # The documents alone: what ``build`` makes without questions, from the same embeddings.
    documents = PassageIndex(
        with_keys.passages, with_keys.embeddings, CONFIG, with_keys.embedding_model, with_keys.bm25
    )
    # The tuned encoder's index, with the past answers' classifier.
    tuned = PassageIndex.build(passages, None, config, questions, ENCODER, CLASSIFIER)
    # The same without it: the votes alone.
    votes_alone = copy.copy(tuned)
    votes_alone.classifier = None
    return {
        "documents": documents,
        "with past questions, without their votes": without_votes,
        "with past questions": with_keys,
        "with the tuned encoder": tuned,
        "with the tuned encoder, its past answers by the votes alone": votes_alone,
    }


@pytest.fixture(scope="module")
def recall(indexes: dict[str, PassageIndex], examples: list[dict]) -> dict[str, dict[int, float]]:
    found = {}
    for name, index in indexes.items():
        if name.endswith("by the votes alone"):
            continue  # the same passages as the tuned encoder's
        ranked = index.search([example["prompt"] for example in examples], 5)
        found[name] = {
            k: float(
                np.mean(
                    recall_of_rankings(
                        [hits[:k] for hits in ranked],
                        [example["context"] for example in examples],
                        index.passages,
                        [example["reference"] for example in examples],
                    )
                )
            )
            for k in (1, 3, 5)
        }
    return found


def test_the_answering_passage_is_usually_among_the_first_three(recall):
    # Measured on the raw sample files: 0.90 at 3 and 0.94 at 5 with past questions and their
    # votes, 0.75 and 0.83 without; lower is a regression in chunking or search.
    with_keys = recall["with past questions"]
    assert with_keys[3] >= 0.88
    assert with_keys[5] >= 0.9
    assert with_keys[1] <= with_keys[3] <= with_keys[5]


def test_the_encoder_tuned_on_past_questions_finds_more_answering_passages_first(recall):
    # Measured on the raw sample files: 0.71 at 1 and 0.92 at 3 with the encoder tuned for 10
    # steps (0.72 and 0.93 for 20, the default), against 0.62 and 0.91 with MiniLM as shipped
    # (0.76 and 0.91 after ingest, in the default run).
    tuned, shipped = recall["with the tuned encoder"], recall["with past questions"]
    assert tuned[1] >= shipped[1] + 0.05
    assert tuned[3] >= 0.88


def test_past_questions_as_keys_find_more_answering_passages(recall):
    assert recall["with past questions"][5] > recall["documents"][5]


def test_the_votes_of_past_questions_find_more_answering_passages_first_three(recall):
    # 0.85 at 3 by the closest key alone (see retrieval/index.py).
    assert recall["with past questions"][3] > recall["with past questions, without their votes"][3]


def test_the_right_past_answer_is_usually_among_the_first_three(indexes, examples):
    from llm_pipeline.pipelines.evaluate.recall import past_answer_recall

    recall = past_answer_recall(
        indexes["with past questions"],
        [example["prompt"] for example in examples],
        [example["reference"] for example in examples],
        [example["context"] for example in examples],
        [1, 3],
    )
    at = {k: float(np.mean(values)) for k, values in recall.items()}
    assert at[1] <= at[3]
    # Measured on the raw sample files: 0.64 at 1, 0.87 at 3 (85 of the 100 held-out questions
    # after ingest, whose training chats are fewer).
    assert at[3] >= 0.8


def past_answer_right_first(index: PassageIndex, examples: list[dict]) -> float:
    from llm_pipeline.pipelines.evaluate.recall import past_answer_recall

    recall = past_answer_recall(
        index,
        [example["prompt"] for example in examples],
        [example["reference"] for example in examples],
        [example["context"] for example in examples],
        [1],
    )
    return float(np.mean(recall[1]))


def test_the_classifier_puts_the_right_past_answer_first_more_often_than_the_votes(
    indexes, examples
):
    # Measured on the raw sample files with the encoder tuned for 10 steps: 0.75 against 0.70
    # (after ingest, tuned 20 steps: 0.79 against 0.73, and at encoder seeds 1 and 2 0.77 and
    # 0.76 against 0.71 and 0.69).
    with_classifier = past_answer_right_first(indexes["with the tuned encoder"], examples)
    votes_alone = past_answer_right_first(
        indexes["with the tuned encoder, its past answers by the votes alone"], examples
    )
    assert with_classifier >= votes_alone + 0.02, (with_classifier, votes_alone)
