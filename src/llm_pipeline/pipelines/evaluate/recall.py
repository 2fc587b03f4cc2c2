"""Recall@k: whether the passages retrieved for a question hold the facts that answer it; and
past-answer recall@k: whether one of the past answers given for it is the right answer.

A validation example's ``context`` is the facts its reference answer rests on; the documents
state the same facts in their own layout (a bullet list, a section, an FAQ entry). A passage
*holds* a context when at least ``FACT_COVERAGE`` (80%) of the context's distinct content
words (lowercased ``\\w+`` tokens, stop words out) occur in the passage. Word sets rather
than exact text, so a heading prefix, bullets or a line break between the facts do not
matter, while a passage with only part of the facts (or another topic's) falls short.
"""

from __future__ import annotations

import logging

import numpy as np

from llm_pipeline.retrieval.index import PassageIndex
from llm_pipeline.retrieval.lexical import words

logger = logging.getLogger(__name__)

FACT_COVERAGE = 0.8


def holds_facts(context: str, passage_text: str) -> bool:
    """Whether ``passage_text`` holds at least 80% of the content words of ``context``."""
    needed = set(words(context))
    if not needed:
        return False
    return len(needed & set(words(passage_text))) >= FACT_COVERAGE * len(needed)


def answering_passages(context: str, passages: list[dict]) -> list[str]:
    """Ids of the passages that hold the facts of ``context`` (see the module docstring)."""
    return [p["id"] for p in passages if holds_facts(context, p["text"])]


def recall_at_k(
    index: PassageIndex, questions: list[str], contexts: list[str | None], k: int
) -> list[float]:
    """Per question with a context, 1.0 if its top ``k`` passages hold the facts, else 0.0.

    Questions without a context (None or blank) are left out: the list has one value per
    question that has one, in order. A context that no passage of the index holds scores 0
    at every k and is logged: the documents lack those facts, retrieval cannot find them.
    """
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions for {len(contexts)} contexts.")
    scored = [(q, c) for q, c in zip(questions, contexts, strict=True) if c and c.strip()]
    if not scored:
        return []
    retrieved = index.search([q for q, _ in scored], k)
    return recall_of_rankings(retrieved, [c for _, c in scored], index.passages)


def recall_of_rankings(
    retrieved: list[list[dict]],
    contexts: list[str],
    passages: list[dict],
    references: list[str] | None = None,
) -> list[float]:
    """1.0 where a ranking holds a passage that holds its context (or, given ``references``,
    its reference answer: an FAQ entry that states the answer counts although it does not
    repeat every background fact), else 0.0 (rankings already cut to k)."""
    facts = [
        (context,) if references is None else (context, reference)
        for context, reference in zip(contexts, references or contexts, strict=True)
    ]
    values, unanswerable = [], 0
    for ranking, texts in zip(retrieved, facts, strict=True):
        if not any(answering_passages(text, passages) for text in texts):
            unanswerable += 1
        values.append(float(any(holds_facts(text, p["text"]) for p in ranking for text in texts)))
    if unanswerable:
        logger.warning(
            "%d of %d contexts are held by no passage of the index: recall cannot reach 1.",
            unanswerable,
            len(contexts),
        )
    return values


def mean_recall(values: list[float]) -> float:
    """The share of questions whose facts were retrieved (nan when none had a context)."""
    return float(np.mean(values)) if values else float("nan")


def past_answer_recall(
    index: PassageIndex,
    questions: list[str],
    references: list[str],
    contexts: list[str | None],
    ks: list[int],
    embedding_model: str | None = None,
) -> dict[int, list[float]]:
    """Per k, per question, 1.0 if one of its first ``k`` past answers
    (``PassageIndex.past_answers``) is right by answer accuracy's rule (closer to its own
    reference than to any reference of another answer), else 0.0: how often the answer is in
    the prompt to be copied. All 0.0 when the index has no past answers."""
    from llm_pipeline.evaluation.similarity import answer_accuracy, answer_keys, embed

    if not index.answers or not questions:
        return {k: [0.0] * len(questions) for k in ks}
    given = index.past_answers(questions, max(ks))
    keys = answer_keys(references, contexts)
    texts = sorted({answer["text"] for answers in given for answer in answers})
    # One pass of the embedding model over the references and the answers given.
    encoded = embed([*references, *texts], embedding_model)
    references_embedded = encoded[: len(references)]
    embedded = dict(zip(texts, encoded[len(references) :], strict=True))
    right_at = []
    for rank in range(max(ks)):
        answers = np.zeros_like(references_embedded)
        for row, found in enumerate(given):
            if rank < len(found):
                answers[row] = embedded[found[rank]["text"]]
        right_at.append(np.array(answer_accuracy(answers, references_embedded, keys)) > 0)
    return {k: [float(v) for v in np.any(right_at[:k], axis=0)] for k in ks}
