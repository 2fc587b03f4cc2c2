"""Ingest: read the four kinds of raw input, normalise, drop exact duplicates, split.

Every row read ends up in an output or in the quarantine with the file, line and rule that
refused it. Nothing here imports torch or transformers: ingest starts fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

RawFiles = dict[str, Callable[[], bytes]]
QUARANTINE_COLUMNS = ["source", "line", "rule", "detail", "record"]
ROLES = ("system", "user", "assistant")

_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str, form: str = "NFC") -> str:
    """Unicode-normalise, unify line endings, squeeze runs of spaces and blank lines."""
    text = unicodedata.normalize(form, text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def content_hash(*parts: str) -> str:
    """A stable hash of text parts; ids and splits derive from it, so reruns agree."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def quarantine_entry(source: str, line: int, rule: str, detail: str, record: Any) -> dict:
    return {"source": source, "line": line, "rule": rule, "detail": detail, "record": record}


def _decode(source: str, data: bytes) -> tuple[str | None, dict | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        detail = f"byte {error.start}: {error.reason}"
        return None, quarantine_entry(source, line, "invalid_utf8", detail, None)


def iter_json_lines(source: str, data: bytes) -> Iterator[tuple[int, dict | None, dict | None]]:
    """``(line number, object, None)`` per JSON object, or ``(line, None, quarantine entry)``."""
    text, problem = _decode(source, data)
    if problem is not None:
        yield problem["line"], None, problem
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, None, quarantine_entry(source, number, "malformed_json", str(error), line)
            continue
        if not isinstance(value, dict):
            detail = f"expected a JSON object, got {type(value).__name__}"
            yield number, None, quarantine_entry(source, number, "not_an_object", detail, value)
            continue
        yield number, value, None


def _text_field(record: dict, name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _drop_exact_duplicates(rows: list[dict], quarantine: list[dict], kind: str) -> list[dict]:
    """Keep the first row of each id (ids are content hashes); quarantine the others."""
    kept: dict[str, dict] = {}
    for row in rows:
        first = kept.get(row["id"])
        if first is None:
            kept[row["id"]] = row
            continue
        detail = f"same normalised {kind} as {first['source']} line {first['line']}"
        record = {k: v for k, v in row.items() if k not in ("id", "source", "line")}
        quarantine.append(quarantine_entry(row["source"], row["line"], "duplicate", detail, record))
    return list(kept.values())


def read_documents(raw_documents: RawFiles, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents from txt and md files (one per file) and jsonl files (``text`` per line)."""
    rows: list[dict] = []
    quarantine: list[dict] = []
    for source, load in raw_documents.items():
        data = load()
        if PurePosixPath(source).suffix.lower() == ".jsonl":
            for number, record, problem in iter_json_lines(source, data):
                if problem is not None:
                    quarantine.append(problem)
                elif (text := _text_field(record, "text")) is None:
                    quarantine.append(
                        quarantine_entry(source, number, "schema", "no non-empty 'text'", record)
                    )
                else:
                    rows.append({"source": source, "line": number, "text": text})
            continue
        text, problem = _decode(source, data)
        if problem is not None:
            quarantine.append(problem)
        elif not text.strip():
            quarantine.append(quarantine_entry(source, 1, "empty", "the file has no text", None))
        else:
            rows.append({"source": source, "line": 1, "text": text})
    for row in rows:
        row["text"] = normalise_text(row["text"], params["unicode_form"])
        row["id"] = "doc-" + content_hash(row["text"])[:16]
    rows = _drop_exact_duplicates(rows, quarantine, "document")
    logger.info("Read %d documents, quarantined %d rows", len(rows), len(quarantine))
    columns = ["id", "source", "line", "text"]
    return _frame(rows, columns), _frame(quarantine, QUARANTINE_COLUMNS)


def conversation_messages(record: dict) -> tuple[list[dict] | None, str]:
    """The record's turns as role/content messages, or ``None`` and the rule it breaks.

    Accepts ``messages`` (role/content) or ``prompt``/``response``; turns must alternate
    user/assistant after an optional system message and end with the assistant.
    """
    if "messages" not in record:
        prompt, response = _text_field(record, "prompt"), _text_field(record, "response")
        if prompt is None or response is None:
            return None, "needs 'messages', or non-empty 'prompt' and 'response'"
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], ""
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        return None, "'messages' must be a non-empty list"
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return None, f"message {index} needs a role among {list(ROLES)}"
        if _text_field(message, "content") is None:
            return None, f"message {index} has no content"
        turns.append({"role": message["role"], "content": message["content"]})
    dialogue = turns[1:] if turns[0]["role"] == "system" else turns
    expected = ["user", "assistant"] * (len(dialogue) // 2 + 1)
    if not dialogue or [t["role"] for t in dialogue] != expected[: len(dialogue)]:
        return None, "roles must alternate user, assistant after an optional system message"
    if dialogue[-1]["role"] != "assistant":
        return None, "the conversation must end with an assistant message"
    return turns, ""


def read_conversations(
    raw_conversations: RawFiles, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conversations from jsonl files, normalised to role/content ``messages``."""
    rows: list[dict] = []
    quarantine: list[dict] = []
    for source, load in raw_conversations.items():
        for number, record, problem in iter_json_lines(source, load()):
            if problem is not None:
                quarantine.append(problem)
                continue
            messages, reason = conversation_messages(record)
            if messages is None:
                quarantine.append(quarantine_entry(source, number, "schema", reason, record))
                continue
            for message in messages:
                message["content"] = normalise_text(message["content"], params["unicode_form"])
            flat = [part for m in messages for part in (m["role"], m["content"])]
            rows.append(
                {
                    "id": "conv-" + content_hash(*flat)[:16],
                    "source": source,
                    "line": number,
                    "messages": messages,
                }
            )
    rows = _drop_exact_duplicates(rows, quarantine, "conversation")
    logger.info("Read %d conversations, quarantined %d rows", len(rows), len(quarantine))
    columns = ["id", "source", "line", "messages"]
    return _frame(rows, columns), _frame(quarantine, QUARANTINE_COLUMNS)


def _read_text_records(
    files: RawFiles, fields: tuple[str, ...], optional: tuple[str, ...], prefix: str, params: dict
) -> tuple[list[dict], list[dict]]:
    """Rows of jsonl files that have every field in ``fields`` as non-empty text."""
    rows: list[dict] = []
    quarantine: list[dict] = []
    for source, load in files.items():
        for number, record, problem in iter_json_lines(source, load()):
            if problem is not None:
                quarantine.append(problem)
                continue
            missing = [name for name in fields if _text_field(record, name) is None]
            if missing:
                detail = f"missing or empty {missing}"
                quarantine.append(quarantine_entry(source, number, "schema", detail, record))
                continue
            row = {"source": source, "line": number}
            for name in fields + optional:
                value = _text_field(record, name)
                row[name] = normalise_text(value, params["unicode_form"]) if value else None
            row["id"] = prefix + content_hash(*(row[name] or "" for name in fields))[:16]
            rows.append(row)
    return rows, quarantine


def read_preferences(raw_preferences: RawFiles, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Preference pairs (``prompt``, ``chosen``, ``rejected``); a pair must differ."""
    fields = ("prompt", "chosen", "rejected")
    rows, quarantine = _read_text_records(raw_preferences, fields, (), "pref-", params)
    distinct = []
    for row in rows:
        if row["chosen"] == row["rejected"]:
            record = {name: row[name] for name in fields}
            quarantine.append(
                quarantine_entry(
                    row["source"], row["line"], "identical_pair", "chosen equals rejected", record
                )
            )
        else:
            distinct.append(row)
    distinct = _drop_exact_duplicates(distinct, quarantine, "preference pair")
    logger.info("Read %d preference pairs, quarantined %d rows", len(distinct), len(quarantine))
    columns = ["id", "source", "line", *fields]
    return _frame(distinct, columns), _frame(quarantine, QUARANTINE_COLUMNS)


def read_validation_examples(
    raw_validation: RawFiles, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Explicit held-out examples (``prompt``, ``reference``, optional ``context``)."""
    rows, quarantine = _read_text_records(
        raw_validation, ("prompt", "reference"), ("context",), "val-", params
    )
    rows = _drop_exact_duplicates(rows, quarantine, "validation example")
    for row in rows:
        row["messages"] = [{"role": "user", "content": row["prompt"]}]
    logger.info("Read %d explicit validation examples", len(rows))
    columns = ["id", "source", "line", "prompt", "reference", "context", "messages"]
    return _frame(rows, columns), _frame(quarantine, QUARANTINE_COLUMNS)


def in_validation_split(row_id: str, fraction: float, salt: str) -> bool:
    """Whether a row belongs to the held-out side: a hash of its id, so reruns agree."""
    bucket = int(content_hash(salt, row_id)[:12], 16) / float(16**12)
    return bucket < fraction


def _split(frame: pd.DataFrame, fraction: float, salt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    held_out = frame["id"].map(lambda row_id: in_validation_split(row_id, fraction, salt))
    held_out = held_out.astype(bool)
    return frame[~held_out].reset_index(drop=True), frame[held_out].reset_index(drop=True)


def split_documents(documents: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a fraction of documents for the pretraining evaluation loss."""
    return _split(documents, params["document_validation_fraction"], params["split_salt"])


def split_preferences(preferences: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a fraction of preference pairs to measure alignment on pairs never trained on."""
    return _split(preferences, params["preference_validation_fraction"], params["split_salt"])


def validation_examples_from_conversations(conversations: pd.DataFrame) -> pd.DataFrame:
    """The last assistant turn is the reference; everything before it is the prompt."""
    rows = []
    for row in conversations.itertuples(index=False):
        prompt_messages = list(row.messages[:-1])
        rows.append(
            {
                "id": "val-" + row.id.removeprefix("conv-"),
                "source": row.source,
                "line": row.line,
                "prompt": prompt_messages[-1]["content"],
                "reference": row.messages[-1]["content"],
                "context": None,
                "messages": prompt_messages,
            }
        )
    columns = ["id", "source", "line", "prompt", "reference", "context", "messages"]
    return _frame(rows, columns)


def split_conversations(
    conversations: pd.DataFrame, explicit_validation: pd.DataFrame, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train and validation conversations, and the validation set evaluation scores.

    With explicit validation examples, those are the validation set; otherwise the held-out
    conversations become it, so no example is on both sides.
    """
    train, held_out = _split(
        conversations, params["conversation_validation_fraction"], params["split_salt"]
    )
    if len(explicit_validation):
        validation_set = explicit_validation
        logger.info("Validation set: %d explicit examples", len(validation_set))
    else:
        validation_set = validation_examples_from_conversations(held_out)
        logger.info("Validation set: %d held-out conversations", len(validation_set))
    return train, held_out, validation_set


def gather_quarantine(*quarantines: pd.DataFrame) -> pd.DataFrame:
    """One quarantine for the whole ingest, ordered by file and line."""
    frames = [frame for frame in quarantines if len(frame)]
    if not frames:
        return _frame([], QUARANTINE_COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    for rule, count in merged["rule"].value_counts().items():
        logger.warning("Quarantined %d rows: %s", count, rule)
    return merged.sort_values(["source", "line"], kind="stable").reset_index(drop=True)
