"""A synthetic raw corpus for the benchmarks: shop documents and chats with planted personal
data and near-duplicates, written in the layout ingest reads (data/01_raw/<kind>/...)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "order",
    "shipping",
    "return",
    "refund",
    "parcel",
    "tent",
    "jacket",
    "boots",
    "warranty",
    "exchange",
    "delivery",
    "store",
    "customer",
    "support",
    "payment",
    "card",
    "gift",
    "loyalty",
    "points",
    "size",
    "guide",
    "waterproof",
    "hiking",
    "camping",
    "backpack",
    "sleeping",
    "bag",
    "stove",
    "lamp",
    "trail",
    "weather",
    "zipper",
    "seam",
    "fabric",
    "care",
    "wash",
    "dry",
    "insole",
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "for",
    "with",
    "within",
    "days",
    "business",
    "free",
    "standard",
    "express",
    "international",
    "cost",
    "price",
    "discount",
    "code",
    "student",
    "account",
    "password",
    "email",
    "invoice",
    "receipt",
)
PII = (
    "Contact me at jane.doe{n}@example.com please.",
    "My phone is +1 415 555 {n:04d}.",
    "Card 4111 1111 1111 1111 was charged twice.",
    "Server 192.168.{a}.{b} logged the error.",
    "IBAN DE89 3704 0044 0532 0130 00 for the refund.",
)


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 20))
    return " ".join(words).capitalize() + "."


def document(rng: random.Random, size: int) -> str:
    parts, length = [], 0
    while length < size:
        text = sentence(rng)
        if rng.random() < 0.02:
            pattern = rng.choice(PII)
            text = pattern.format(
                n=rng.randint(0, 9999), a=rng.randint(0, 255), b=rng.randint(0, 255)
            )
        parts.append(text)
        length += len(text) + 1
    return " ".join(parts)


def near_copy(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 100)):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def write_corpus(root: Path, megabytes: float, seed: int = 7) -> int:
    """About ``megabytes`` of documents (jsonl and txt) and conversations; returns bytes written."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written, file_index = 0, 0
    documents, conversations = root / "documents", root / "conversations"
    documents.mkdir(parents=True, exist_ok=True)
    conversations.mkdir(parents=True, exist_ok=True)
    recent: list[str] = []
    while written < target:
        lines = []
        for _ in range(500):
            if recent and rng.random() < 0.05:
                text = near_copy(rng, rng.choice(recent))
            else:
                text = document(rng, rng.randint(1_000, 4_000))
                recent = [*recent[-50:], text]
            lines.append(json.dumps({"text": text}))
        data = ("\n".join(lines) + "\n").encode()
        (documents / f"part-{file_index:04d}.jsonl").write_bytes(data)
        written += len(data)
        turns = []
        for _ in range(200):
            messages = [
                {"role": "user", "content": document(rng, 120)},
                {"role": "assistant", "content": document(rng, 300)},
            ]
            turns.append(json.dumps({"messages": messages}))
        data = ("\n".join(turns) + "\n").encode()
        (conversations / f"chats-{file_index:04d}.jsonl").write_bytes(data)
        written += len(data)
        file_index += 1
    return written
