"""Rule-based rewards for reinforcement learning, beside the trained reward model.

Each rule is a pure function of an answer's text; ``rule_reward_functions`` turns the rules that
``align.rl.rules`` switches on into TRL reward functions (``f(prompts, completions, **kwargs)``)
with their weights. They keep the policy honest where a small reward model is easily gamed:
answers of a sensible length, in a required form, without forbidden content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RewardFunction = Callable[..., list[float]]
_WORD = re.compile(r"\w+", re.UNICODE)


class LengthRule(BaseModel):
    """Answers between ``min_words`` and ``max_words`` words score 0, others less (down to -1)."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(1, ge=0)
    max_words: int = Field(..., ge=1)
    weight: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> LengthRule:
        if self.min_words > self.max_words:
            raise ValueError(
                f"align.rl.rules.length: min_words ({self.min_words}) is above max_words "
                f"({self.max_words})."
            )
        return self


class FormatRule(BaseModel):
    """Answers in which the regular expression ``pattern`` is found score 1, others 0."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    weight: float = 1.0

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"align.rl.rules.format.pattern {pattern!r} is not a regular expression: {error}"
            ) from None
        return pattern


class ForbiddenRule(BaseModel):
    """Answers containing any of ``words`` (whole words or phrases, any case) score -1."""

    model_config = ConfigDict(extra="forbid")

    words: list[str] = Field(..., min_length=1)
    weight: float = 1.0

    @field_validator("words")
    @classmethod
    def _not_blank(cls, words: list[str]) -> list[str]:
        if any(not word.strip() for word in words):
            raise ValueError("align.rl.rules.forbidden.words has a blank entry: remove it.")
        return words


class RuleRewards(BaseModel):
    """Which rules apply; a rule left out (or null) is off."""

    model_config = ConfigDict(extra="forbid")

    length: LengthRule | None = None
    format: FormatRule | None = None
    forbidden: ForbiddenRule | None = None


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def length_reward(text: str, rule: LengthRule) -> float:
    """0 inside the word range; outside, minus the distance to it relative to ``max_words``."""
    words = word_count(text)
    distance = max(rule.min_words - words, words - rule.max_words, 0)
    return -min(1.0, distance / rule.max_words)


def format_reward(text: str, rule: FormatRule) -> float:
    return 1.0 if re.search(rule.pattern, text) else 0.0


def forbidden_reward(text: str, rule: ForbiddenRule) -> float:
    lowered = text.lower()
    for word in rule.words:
        if re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", lowered):
            return -1.0
    return 0.0


def completion_text(completion: Any) -> str:
    """The answer's text, whether TRL passes a string or a list of chat turns."""
    if isinstance(completion, str):
        return completion
    return "".join(turn["content"] for turn in completion if turn.get("role") == "assistant")


def _as_reward_function(name: str, score: Callable[[str], float]) -> RewardFunction:
    """A TRL reward function named ``name`` (TRL logs it as ``rewards/<name>/mean``)."""

    def reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        return [score(completion_text(completion)) for completion in completions]

    reward.__name__ = name
    return reward


def rule_reward_functions(rules: RuleRewards) -> list[tuple[RewardFunction, float]]:
    """The rules that are on, as (TRL reward function, weight) pairs."""
    functions = []
    for key, (name, score) in _RULE_SCORES.items():
        rule = getattr(rules, key)
        if rule is not None:
            functions.append((_as_reward_function(name, partial(score, rule=rule)), rule.weight))
    return functions


# Each rule's score, under the name TRL logs it by (rewards/<name>/mean).
_RULE_SCORES: dict[str, tuple[str, Callable[..., float]]] = {
    "length": ("length", length_reward),
    "format": ("format", format_reward),
    "forbidden": ("forbidden_content", forbidden_reward),
}
