"""Retrieved passages put into a chat the same way in every stage.

Fine-tuning, alignment, evaluation and serving all call ``grounded_messages``, so the model
sees its passages in one place and one form: a system turn, before the conversation.
"""

from __future__ import annotations


def query_of(messages: list[dict]) -> str:
    """The text of the last user turn: what the passages should answer."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    raise ValueError("The conversation has no user turn to search the documents for.")


def passages_block(passages: list[dict]) -> str:
    """The passages numbered "[1] ...", one per line, in the order given (best first)."""
    return "\n".join(
        f"[{number}] {' '.join(p['text'].split())}" for number, p in enumerate(passages, 1)
    )


def answers_block(answers: list[dict]) -> str:
    """Past answers numbered "[1] Q: ... A: ...", one per line, in the order given."""
    return "\n".join(
        f"[{number}] Q: {' '.join(a['question'].split())} A: {' '.join(a['text'].split())}"
        for number, a in enumerate(answers, 1)
    )


def grounded_messages(
    messages: list[dict],
    passages: list[dict],
    template: str,
    answers: list[dict] | None = None,
    answers_template: str = "{answers}",
) -> list[dict]:
    """``messages`` with ``passages`` in a system turn rendered from ``template``, and the past
    ``answers`` after them rendered from ``answers_template``.

    An existing first system turn keeps its text and gets the passages after it, so the
    chat still has one system turn at the front. Without passages or answers the messages come
    back as they were (copied). ``template`` holds a ``{passages}`` field, ``answers_template``
    an ``{answers}`` field.
    """
    messages = [dict(message) for message in messages]
    parts = [template.format(passages=passages_block(passages))] if passages else []
    if answers:
        parts.append(answers_template.format(answers=answers_block(answers)))
    if not parts:
        return messages
    grounding = "\n\n".join(parts)
    if messages and messages[0].get("role") == "system":
        instructions = str(messages[0].get("content") or "").rstrip()
        messages[0]["content"] = f"{instructions}\n\n{grounding}" if instructions else grounding
        return messages
    return [{"role": "system", "content": grounding}, *messages]
