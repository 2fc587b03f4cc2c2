"""Whole tables of chats grounded in one pass: each user turn's passages found together (one
embedding call for the table), then put into the chat by ``grounded_messages``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_pipeline.retrieval.grounding import grounded_messages
from llm_pipeline.retrieval.index import PassageIndex


def ground_conversations(
    conversations: list[list[dict]], index: PassageIndex, top_k: int, template: str
) -> list[list[dict]]:
    """Each chat with the passages found for its user turns in its system turn: the ``top_k``
    best for every user turn, best first, each passage once."""
    queries = [
        (row, str(turn.get("content") or ""))
        for row, messages in enumerate(conversations)
        for turn in messages
        if turn.get("role") == "user"
    ]
    found = index.search([query for _, query in queries], top_k) if queries else []
    passages: list[list[dict]] = [[] for _ in conversations]
    for (row, _), hits in zip(queries, found, strict=True):
        seen = {p["id"] for p in passages[row]}
        passages[row] += [p for p in hits if p["id"] not in seen]
    return [
        grounded_messages(messages, chosen, template)
        for messages, chosen in zip(conversations, passages, strict=True)
    ]


def grounding(index_folder: Path | None, params: dict[str, Any]) -> Any:
    """A function that grounds a list of chats as ``params`` (``retrieval:``) say, or one that
    returns them unchanged when retrieval is off (or there is no index)."""
    from llm_pipeline.retrieval.config import RetrievalConfig

    config = RetrievalConfig.model_validate(params)
    if not config.enabled or index_folder is None:
        return lambda conversations: [list(messages) for messages in conversations]
    index = PassageIndex.load(Path(index_folder))
    return lambda conversations: ground_conversations(
        conversations, index, config.top_k, config.template
    )
