"""The review queue: pairs of sampled answers for people to judge, which answer is A drawn at
random so that position says nothing. The feedback pipeline writes it; the review page
(``python -m llm_pipeline.cli.review``) serves it and brings the choices back.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence


def review_pairs(
    prompts: Sequence[str], answers_per_prompt: Sequence[Sequence[str]], model_name: str, seed: int
) -> list[dict[str, str]]:
    """One queue row per prompt with two different answers, in a random order per pair."""
    rng = random.Random(seed)
    rows = []
    for prompt, answers in zip(prompts, answers_per_prompt, strict=True):
        distinct = list(dict.fromkeys(a.strip() for a in answers if a.strip()))
        if len(distinct) < 2:
            continue
        first, second = distinct[0], distinct[1]
        if rng.random() < 0.5:
            first, second = second, first
        key = json.dumps([prompt, sorted([first, second])], ensure_ascii=False)
        rows.append(
            {
                "id": hashlib.sha256(key.encode()).hexdigest()[:16],
                "prompt": prompt,
                "answer_a": first,
                "answer_b": second,
                "model": model_name,
            }
        )
    return rows
