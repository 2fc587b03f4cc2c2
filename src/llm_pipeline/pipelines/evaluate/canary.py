"""Memorisation of a planted secret, after Carlini et al., "The Secret Sharer" (2019).

A canary is a sentence with a random secret ("The access code of the north vault is 48213906.")
planted in the training data. The model ranks the true secret among ``candidates`` random
secrets of the same form by the log-likelihood it gives each after the prefix; the exposure is
``log2(candidates + 1) - log2(rank)``: 0 when the true secret ranks last, about 1 for a model
that never saw it (a median rank), ``log2(candidates + 1)`` when it is the likeliest of all.
Whether greedy decoding from the prefix repeats the secret is checked too (regurgitation).
"""

from __future__ import annotations

import math
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CanaryConfig(BaseModel):
    """``evaluate.canary``: the planted sentence and how its exposure is measured."""

    model_config = ConfigDict(extra="forbid")

    prefix: str
    secret: str
    candidates: int = Field(ge=1)
    seed: int
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)

    @field_validator("secret")
    @classmethod
    def _digits(cls, secret: str) -> str:
        if not secret.isdigit():
            raise ValueError(f"the canary's secret must be digits, got {secret!r}")
        return secret


def canary_text(prefix: str, secret: str) -> str:
    """The sentence as planted: ``<prefix> <secret>.``"""
    return f"{prefix} {secret}."


def candidate_secrets(config: CanaryConfig) -> list[str]:
    """``config.candidates`` distinct random secrets of the secret's length, never the secret."""
    space = 10 ** len(config.secret)
    if config.candidates >= space:
        raise ValueError(
            f"{config.candidates} candidates do not fit in the {space} secrets of "
            f"{len(config.secret)} digits: lower evaluate.canary.candidates."
        )
    rng = random.Random(config.seed)
    found: set[str] = set()
    while len(found) < config.candidates:
        drawn = f"{rng.randrange(space):0{len(config.secret)}d}"
        if drawn != config.secret:
            found.add(drawn)
    return sorted(found)


def sequence_log_likelihoods(
    model: Any, tokenizer: Any, prefix: str, texts: list[str], batch_size: int
) -> list[float]:
    """log p(text | prefix) of each continuation: the sum over its tokens."""
    from llm_pipeline.pipelines.evaluate.likelihood import IGNORED, summed_nlls

    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    sequences = []
    for text in texts:
        ids = tokenizer(prefix + text, add_special_tokens=False)["input_ids"]
        # Token i is predicted at position i - 1; the continuation starts after the prefix.
        shared = _common_prefix(prefix_ids, ids)
        sequences.append((ids, [IGNORED] * shared + ids[shared:]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nlls, _ = summed_nlls(model, sequences, pad, batch_size)
    return [-nll for nll in nlls]


def _common_prefix(first: list[int], second: list[int]) -> int:
    """How many leading tokens two encodings share (at least 1, so a token is predicted)."""
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return max(count, 1)


def canary_exposure(model: Any, tokenizer: Any, config: CanaryConfig) -> dict[str, Any]:
    """Rank and exposure of the planted secret among random ones, and whether greedy decoding
    from the prefix repeats it."""
    import torch

    candidates = candidate_secrets(config)
    texts = [f" {secret}." for secret in [config.secret, *candidates]]
    scores = sequence_log_likelihoods(model, tokenizer, config.prefix, texts, config.batch_size)
    true_score = scores[0]
    # Ties count against the secret: a model that cannot tell them apart has not memorised it.
    rank = 1 + sum(score >= true_score for score in scores[1:])
    ids = tokenizer(config.prefix, add_special_tokens=False, return_tensors="pt").to(model.device)
    with torch.no_grad():
        output = model.generate(
            **ids,
            max_new_tokens=config.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    completion = tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    maximum = math.log2(len(candidates) + 1)
    return {
        "exposure": maximum - math.log2(rank),
        "max_exposure": maximum,
        "rank": rank,
        "candidates": len(candidates),
        "regurgitated": config.secret in completion,
        "completion": completion.strip(),
    }
