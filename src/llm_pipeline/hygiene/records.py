"""What a record of each kind says, as text: the key exact duplicates share, the text compared."""

from __future__ import annotations

from typing import Any

import pandas as pd

# Where a preference pair comes from: a file of pairs, a person's review (tools/review.py), or
# a judge's ranking of sampled answers (the feedback pipeline). Pairs without ``origin`` are
# "dataset"; ingest keeps it, and the preferences contract allows only these.
PREFERENCE_ORIGINS = ("dataset", "human", "ai_feedback")


def record_key(kind: str, row: Any) -> list[str]:
    """The normalised parts that make two rows of ``kind`` the same row."""
    if kind == "documents":
        return [row.text]
    if kind == "conversations":
        return [part for turn in row.messages for part in (turn["role"], turn["content"])]
    if kind == "preferences":
        return [row.prompt, row.chosen, row.rejected]
    return [row.prompt, row.reference]


def comparable_text(kind: str, key: list[str]) -> str:
    """The words of a row, for near-duplicate and leakage checks (roles left out)."""
    return " ".join(key[1::2]) if kind == "conversations" else " ".join(key)


def record_texts(kind: str, frame: pd.DataFrame) -> list[str]:
    """``comparable_text`` of every row of ``frame`` (column-wise where the kind allows).

    An empty table read back from an empty file has no columns at all: no texts.
    """
    if frame.empty:
        return []
    if kind == "documents":
        return frame["text"].tolist()
    if kind == "conversations":
        return [" ".join(turn["content"] for turn in turns) for turns in frame["messages"]]
    if kind == "preferences":
        columns = [frame[c].tolist() for c in ("prompt", "chosen", "rejected")]
        return [" ".join(parts) for parts in zip(*columns, strict=True)]
    return [comparable_text(kind, record_key(kind, row)) for row in frame.itertuples(index=False)]


def leakage_probes(validation: pd.DataFrame, fields: list[str], min_words: int) -> list[str]:
    """The text of each validation example that is looked for in the training data.

    Examples with fewer than ``min_words`` words give an empty probe: a two-word question such
    as "Refund policy?" occurs in training data without anything having leaked.
    """
    probes = []
    for row in validation.to_dict(orient="records"):
        text = " ".join(str(row[f]) for f in fields if isinstance(row.get(f), str))
        probes.append(text if len(text.split()) >= min_words else "")
    return probes
