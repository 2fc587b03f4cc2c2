"""Documents cut into passages that each answer one thing, labelled with their heading path.

A document is read as headings (markdown ``#`` lines, or a line underlined with ``===`` or
``---``) and blocks separated by blank lines. A question with its answer (``Q:``/``A:``, also
bold as in ``**Q:**``) is one block even across a blank line. Blocks of one section are merged
up to ``max_words`` words; a longer block is cut at lines, then sentences, then words. Each
passage's text starts with its heading path ("Returns and Refunds > Refund timing: ..."), so a
passage read alone still says what it is about.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator
from dataclasses import dataclass

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:\s*\1){2,}\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_QUESTION = re.compile(r"^\s*(?:\*\*|__)?(?:Q|Question)\s*:\s*(?:\*\*|__)?\s*", re.IGNORECASE)
_ANSWER = re.compile(r"^\s*(?:\*\*|__)?(?:A|Answer)\s*:\s*(?:\*\*|__)?\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")


@dataclass(frozen=True)
class Block:
    """A paragraph or a question with its answer, under a heading path."""

    path: tuple[str, ...]
    text: str
    is_qa: bool


def split_passages(documents: list[dict], max_words: int) -> list[dict]:
    """Passages ``{"id", "source", "title", "text"}`` of validated document rows.

    Rows are taken in (source, line, id) order, so the same documents give the same passages
    in the same order whatever order they come in. A passage id is its document's id and its
    number in the document. A row's ``title`` (if it has one) heads every path; otherwise the
    title is the document's first heading.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    passages = []
    for row in sorted(documents, key=_document_order):
        title = document_title(row)
        for position, (path, body) in enumerate(document_passages(row, max_words), start=1):
            prefix = " > ".join(path)
            passages.append(
                {
                    "id": f"{row['id']}#{position}",
                    "source": str(row.get("source") or row["id"]),
                    "title": title,
                    "text": f"{prefix}: {body}" if prefix else body,
                }
            )
    return passages


def _document_order(row: dict) -> tuple[str, int, str]:
    for field in ("id", "text"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise ValueError(f"Document row {row.get('id')!r} needs a non-empty string '{field}'.")
    line = row.get("line")  # a numpy integer when the rows come from a DataFrame
    return (
        str(row.get("source") or ""),
        int(line) if isinstance(line, numbers.Integral) else 0,
        row["id"],
    )


def document_title(row: dict) -> str:
    """The row's ``title`` if it has one, else the document's first heading, else ""."""
    return _row_title(row) or next(
        (name for kind, _, name in _raw_blocks(row["text"]) if kind == "heading"), ""
    )


def _row_title(row: dict) -> str:
    title = row.get("title")
    return " ".join(title.split()) if isinstance(title, str) else ""


def document_passages(row: dict, max_words: int) -> list[tuple[tuple[str, ...], str]]:
    """(heading path, body) of each passage of one document row, in reading order."""
    blocks = list(read_blocks(row["text"]))
    title = _row_title(row)
    if title:
        blocks = [
            Block(b.path if b.path[:1] == (title,) else (title, *b.path), b.text, b.is_qa)
            for b in blocks
        ]
    blocks = _merge_shared_answers(blocks, max_words)
    passages: list[tuple[tuple[str, ...], str]] = []
    pending: list[str] = []
    pending_key: tuple[tuple[str, ...], bool] | None = None
    for block in blocks:
        key = (block.path, block.is_qa)
        for piece in _pieces(block, max_words):
            words = _word_count(piece)
            if pending and (key != pending_key or _word_count(*pending) + words > max_words):
                passages.append((pending_key[0], "\n".join(pending)))
                pending = []
            pending.append(piece)
            pending_key = key
    if pending:
        passages.append((pending_key[0], "\n".join(pending)))
    return passages


def _merge_shared_answers(blocks: list[Block], max_words: int) -> list[Block]:
    """Questions of one section that share an answer, as one block: "Q: ...\nQ: ...\nA: ...".

    FAQ pages often answer several phrasings with the same text; one block per answer keeps
    each passage about one thing and the prompt free of repeats. A group longer than
    ``max_words`` is split, the answer repeated in each part.
    """
    groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
    order: list[Block | tuple[tuple[str, ...], str]] = []
    for block in blocks:
        question, _, answer = block.text.partition("\n")
        if not (block.is_qa and question.startswith("Q: ") and answer.startswith("A: ")):
            order.append(block)
            continue
        key = (block.path, answer)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(question)
    merged = []
    for item in order:
        if isinstance(item, Block):
            merged.append(item)
            continue
        path, answer = item
        budget = max(max_words - _word_count(answer), 1)
        part: list[str] = []
        for question in groups[item]:
            if part and _word_count(*part, question) > budget:
                merged.append(Block(path, "\n".join([*part, answer]), True))
                part = []
            part.append(question)
        merged.append(Block(path, "\n".join([*part, answer]), True))
    return merged


def read_blocks(text: str) -> Iterator[Block]:
    """The paragraphs and question/answer pairs of ``text`` with their heading paths.

    Question/answer pairs that follow prose in the same section take the section's parent
    path: ingest removes headings repeated across many documents ("## Common questions"), which
    leaves a page's FAQ under the last topic heading before it, where it does not belong.
    """
    headings: list[tuple[int, str]] = []
    prose_seen = False
    for kind, level, content in _raw_blocks(text):
        if kind == "heading":
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, content))
            prose_seen = False
            continue
        path = tuple(name for _, name in headings)
        if kind == "qa":
            yield Block(path[:-1] if prose_seen and len(path) > 1 else path, content, True)
        else:
            prose_seen = True
            yield Block(path, content, False)


def _raw_blocks(text: str) -> Iterator[tuple[str, int, str]]:
    """("heading", level, name), ("qa", 0, text) and ("text", 0, text) in reading order."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraph: list[str] = []
    question: list[str] | None = None  # a question waiting for its answer across a blank line
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        following = lines[index + 1].rstrip() if index + 1 < len(lines) else ""
        heading = _ATX_HEADING.match(line)
        underlined = (
            not paragraph
            and line.strip()
            and not _LIST_ITEM.match(line)
            and _UNDERLINE.match(following)
            and len(following.strip()) >= 3
        )
        if heading or underlined or _RULE.match(line) or not line.strip():
            if paragraph:
                question = yield from _flush(paragraph, question)
                paragraph = []
            if heading or underlined:
                if question:
                    yield "qa", 0, "\n".join(question)
                    question = None
                if heading:
                    yield "heading", len(heading.group(1)), _heading_name(heading.group(2))
                else:
                    yield "heading", 1 if following.strip()[0] == "=" else 2, _heading_name(line)
                    index += 1  # the underline
        else:
            paragraph.append(line.strip())
        index += 1
    if paragraph:
        question = yield from _flush(paragraph, question)
    if question:
        yield "qa", 0, "\n".join(question)


def _flush(paragraph: list[str], question: list[str] | None) -> Iterator[tuple[str, int, str]]:
    """Blocks of one paragraph; returns a question still waiting for its answer."""
    if _ANSWER.match(paragraph[0]) and question:
        paragraph = [*question, *paragraph]
        question = None
    elif question:
        yield "qa", 0, "\n".join(question)
        question = None
    if not _QUESTION.match(paragraph[0]):
        yield "text", 0, _plain("\n".join(paragraph))
        return None
    pairs: list[list[str]] = []
    for line in paragraph:
        if _QUESTION.match(line) or not pairs:
            pairs.append([])
        pairs[-1].append(_qa_line(line))
    for pair in pairs[:-1]:
        yield "qa", 0, "\n".join(pair)
    last = pairs[-1]
    if any(line.startswith("A: ") for line in last):
        yield "qa", 0, "\n".join(last)
        return None
    return last


def _qa_line(line: str) -> str:
    if _QUESTION.match(line):
        return "Q: " + _plain(_QUESTION.sub("", line, count=1))
    if _ANSWER.match(line):
        return "A: " + _plain(_ANSWER.sub("", line, count=1))
    return _plain(line)


def _heading_name(text: str) -> str:
    return " ".join(_plain(text).strip(" :").split())


def _plain(text: str) -> str:
    """``text`` without markdown bold markers, which only cost tokens in a prompt."""
    return _EMPHASIS.sub(r"\2", text)


def _pieces(block: Block, max_words: int) -> list[str]:
    """``block.text`` in parts of at most ``max_words`` words; a question heads each part of
    its answer, so no part of an answer loses what it answers."""
    if _word_count(block.text) <= max_words:
        return [block.text]
    if block.is_qa and block.text.startswith("Q: "):
        question, _, answer = block.text.partition("\n")
        budget = max_words - _word_count(question)
        if answer and budget >= max_words // 2:
            return [f"{question}\n{part}" for part in _cut(answer, budget)]
    return _cut(block.text, max_words)


def _cut(text: str, max_words: int) -> list[str]:
    """``text`` packed into parts of at most ``max_words`` words, cut at lines, then
    sentences, then words."""
    units: list[tuple[str, str]] = []  # (separator before it, unit)
    for line in text.split("\n"):
        separator = "\n"
        for sentence in _SENTENCE_END.split(line) if _word_count(line) > max_words else [line]:
            words = sentence.split()
            for start in range(0, max(len(words), 1), max_words):
                units.append((separator, " ".join(words[start : start + max_words])))
                separator = " "
    parts: list[str] = []
    for separator, unit in units:
        if parts and _word_count(parts[-1], unit) <= max_words:
            parts[-1] += separator + unit
        else:
            parts.append(unit)
    return parts


def _word_count(*texts: str) -> int:
    return sum(len(text.split()) for text in texts)
