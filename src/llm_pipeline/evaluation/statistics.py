"""Bootstrap 95% intervals for per-example metrics, and paired comparisons between models.

Every model is scored on the same validation examples, so a comparison resamples the examples
once and recomputes both models' figures on each resample (a paired bootstrap): the interval of
the difference then reflects the examples' variation, not the models' separate noise.

A metric's per-example data is a ``Sample``: plain values averaged (ROUGE-L, similarity, judged
scores, with ``None`` where a metric does not apply to an example), or, for perplexity, each
example's summed negative log-likelihood and token count, whose ratio is taken over the resample
(perplexity is not a mean of per-example perplexities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

LEVEL = 0.95

# Whether a higher figure is better, per model metric (evaluate compares, register gates).
DIRECTIONS = {
    "answer_accuracy": True,
    "perplexity": False,
    "rouge_l": True,
    "similarity": True,
    "groundedness": True,
    "relevance": True,
    "coherence": True,
    "fluency": True,
}


@dataclass(frozen=True)
class Sample:
    """Per-example data of one metric: ``values`` (None: not applicable), or with ``tokens``,
    summed negative log-likelihoods whose figure is ``exp(sum values / sum tokens)``."""

    values: tuple[float | None, ...]
    tokens: tuple[int, ...] | None = None

    @classmethod
    def of(cls, values: list[float | None], tokens: list[int] | None = None) -> Sample:
        return cls(tuple(values), None if tokens is None else tuple(tokens))

    def figure(self, rows: np.ndarray) -> np.ndarray:
        """The metric on each row of example indices (rows: resamples x examples)."""
        values = np.array([np.nan if v is None else v for v in self.values], dtype=float)
        if self.tokens is not None:
            tokens = np.array(self.tokens, dtype=float)
            return np.exp(values[rows].sum(axis=1) / np.maximum(tokens[rows].sum(axis=1), 1.0))
        picked = values[rows]
        counts = (~np.isnan(picked)).sum(axis=1)
        with np.errstate(invalid="ignore"):
            return np.where(counts > 0, np.nansum(picked, axis=1) / np.maximum(counts, 1), np.nan)

    def applicable(self) -> np.ndarray:
        """Indices of the examples the metric applies to."""
        return np.array([i for i, v in enumerate(self.values) if v is not None], dtype=int)


def resamples(examples: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` bootstrap resamples (with replacement) of ``examples``, seeded."""
    rng = np.random.default_rng(seed)
    return examples[rng.integers(0, len(examples), size=(count, len(examples)))]


def interval(sample: Sample, count: int, seed: int) -> dict[str, Any]:
    """``{"value", "low", "high", "n"}``: the metric on all applicable examples and the
    percentile bootstrap 95% interval around it."""
    examples = sample.applicable()
    if len(examples) == 0:
        return not_computed("the metric applies to none of the validation examples")
    value = float(sample.figure(examples[None, :])[0])
    draws = sample.figure(resamples(examples, count, seed))
    low, high = np.nanpercentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return {"value": value, "low": float(low), "high": float(high), "n": len(examples)}


def compare(
    sample: Sample,
    against: Sample,
    greater_is_better: bool,
    count: int,
    seed: int,
) -> dict[str, Any]:
    """The difference ``sample - against`` on the examples both apply to, with its paired
    bootstrap 95% interval; ``significant`` when the interval excludes zero, ``better`` when it
    lies wholly on the better side (None when it straddles zero)."""
    if len(sample.values) != len(against.values):
        raise ValueError(
            f"A paired comparison needs the same examples: {len(sample.values)} against "
            f"{len(against.values)}."
        )
    examples = np.intersect1d(sample.applicable(), against.applicable())
    if len(examples) == 0:
        return {"computed": False, "reason": "no validation example that both figures cover"}
    difference = float(sample.figure(examples[None, :])[0] - against.figure(examples[None, :])[0])
    rows = resamples(examples, count, seed)
    draws = sample.figure(rows) - against.figure(rows)
    low, high = (
        float(x) for x in np.nanpercentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    )
    significant = low > 0 or high < 0
    better = None if not significant else (low > 0) == greater_is_better
    return {
        "difference": difference,
        "low": low,
        "high": high,
        "n": len(examples),
        "significant": bool(significant),
        "better": better,
        "greater_is_better": greater_is_better,
    }


def not_computed(reason: str) -> dict[str, Any]:
    """A figure that was not measured: its reason, and no number standing in for it."""
    return {"computed": False, "reason": reason}


def is_computed(figure: dict[str, Any]) -> bool:
    return figure.get("computed", True) is not False and math.isfinite(
        figure.get("value", math.nan)
    )
