"""Whole tables of chats grounded in one pass: each user turn's passages found together (one
embedding call for the table), then put into the chat by ``grounded_messages``."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

from llm_pipeline.retrieval.grounding import grounded_messages
from llm_pipeline.retrieval.index import PassageIndex

logger = logging.getLogger(__name__)


def ground_conversations(
    conversations: list[list[dict]],
    index: PassageIndex,
    top_k: int,
    template: str,
    training: bool = False,
    past_answers: int = 0,
    answers_template: str = "{answers}",
    own_answer: bool = False,
) -> list[list[dict]]:
    """Each chat with the passages found for its user turns in its system turn: the ``top_k``
    best for every user turn, best first, each passage once; then, if ``past_answers``, that
    many answers of past questions like each user turn (``PassageIndex.past_answers``), each
    answer once.

    ``training`` chats are grounded as a new question would be, not as their own: a user turn
    is not routed by its own past-question key (``PassageIndex.search``), and each chat's
    passages come in an order shuffled by its text (the same every run), so that the model
    learns to answer from the passage that answers, wherever it is, rather than from the
    first one. Their past answers keep the ranked order (shuffled, the sample data's LoRA
    fine-tune answered 46 of 100 held-out questions right, against 55 ranked: docs/figures.md,
    "Past answers in the prompt") and, with ``own_answer``, are found with the user turn's own
    question voting, so that its own answer nearly always comes first and the model learns to
    give the first past answer; without, its own question's vote is left out as for the keys.
    With the first past answer alone in the prompt, the first gave 0.77 and 0.78 of the sample
    data's held-out questions right at two encoder seeds, the second 0.77 and 0.72
    (docs/figures.md, "A classifier of past answers").
    """
    queries = [
        (row, str(turn.get("content") or ""))
        for row, messages in enumerate(conversations)
        for turn in messages
        if turn.get("role") == "user"
    ]
    found = (
        index.search([query for _, query in queries], top_k, leave_own_out=training)
        if queries and top_k
        else [[] for _ in queries]
    )
    passages: list[list[dict]] = [[] for _ in conversations]
    for (row, _), hits in zip(queries, found, strict=True):
        seen = {p["id"] for p in passages[row]}
        passages[row] += [p for p in hits if p["id"] not in seen]
    answers: list[list[dict]] = [[] for _ in conversations]
    if past_answers and not index.answers:
        logger.warning(
            "retrieval.past_answers is %d but the passage index holds no past answers (it was "
            "built with past_answers 0): the prompts get passages only. Build the index again.",
            past_answers,
        )
    if past_answers and queries:
        given = index.past_answers(
            [query for _, query in queries], past_answers, leave_own_out=training and not own_answer
        )
        for (row, _), hits in zip(queries, given, strict=True):
            seen = {a["text"] for a in answers[row]}
            answers[row] += [a for a in hits if a["text"] not in seen]
    if training:
        seeds = [
            json.dumps(list(messages), sort_keys=True, default=str) for messages in conversations
        ]
        passages = [shuffled(chosen, seed) for seed, chosen in zip(seeds, passages, strict=True)]
    return [
        grounded_messages(messages, chosen, template, given, answers_template)
        for messages, chosen, given in zip(conversations, passages, answers, strict=True)
    ]


def shuffled(passages: list[dict], seed_text: str) -> list[dict]:
    """``passages`` in an order drawn from ``seed_text``: the same for the same text in every
    run and process (a hash, not Python's salted ``hash``)."""
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "big")
    order = list(passages)
    random.Random(seed).shuffle(order)
    return order


def grounding(index_folder: Path | None, params: dict[str, Any], training: bool = False) -> Any:
    """A function that grounds a list of chats as ``params`` (``retrieval:``) say, or one that
    returns them unchanged when retrieval is off (or there is no index). ``training``: the
    chats are training data, whose questions are the index's keys: they are grounded without
    their own keys and with their passages shuffled (``ground_conversations``)."""
    from llm_pipeline.retrieval.config import RetrievalConfig

    config = RetrievalConfig.model_validate(params)
    if not config.enabled or index_folder is None:
        return lambda conversations: [list(messages) for messages in conversations]
    index = PassageIndex.load(Path(index_folder))
    return lambda conversations: ground_conversations(
        conversations,
        index,
        config.top_k,
        config.template,
        training=training,
        past_answers=config.past_answers,
        answers_template=config.past_answers_template,
        own_answer=config.own_answer_in_training,
    )
