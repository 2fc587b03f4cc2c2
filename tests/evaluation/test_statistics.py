"""Tests for the bootstrap intervals and paired comparisons behind every reported figure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_pipeline.evaluation.statistics import Sample, compare, interval, is_computed

COUNT, SEED = 2000, 3


def test_interval_of_a_mean_holds_the_mean_and_narrows_with_more_examples():
    rng = np.random.default_rng(0)
    small = Sample.of(list(rng.normal(0.5, 0.2, 30)))
    large = Sample.of(list(rng.normal(0.5, 0.2, 600)))

    few, many = interval(small, COUNT, SEED), interval(large, COUNT, SEED)

    for figure, sample in ((few, small), (many, large)):
        assert figure["low"] < figure["value"] < figure["high"]
        assert figure["value"] == pytest.approx(np.mean(sample.values))
    assert many["high"] - many["low"] < (few["high"] - few["low"]) / 2
    # The normal approximation of a mean's 95% interval: about 2 * 1.96 * sd / sqrt(n).
    assert many["high"] - many["low"] == pytest.approx(2 * 1.96 * 0.2 / math.sqrt(600), rel=0.2)


def test_interval_is_the_same_for_the_same_seed_and_differs_for_another():
    sample = Sample.of([0.1, 0.9, 0.4, 0.3, 0.8, 0.5, 0.2])

    assert interval(sample, COUNT, SEED) == interval(sample, COUNT, SEED)
    assert interval(sample, COUNT, SEED) != interval(sample, COUNT, SEED + 1)


def test_perplexity_is_pooled_over_tokens_not_averaged_over_examples():
    # Two examples: 10 tokens at nll 1.0 each and 1 token at nll 5.0.
    sample = Sample.of([10.0, 5.0], tokens=[10, 1])

    figure = interval(sample, COUNT, SEED)

    assert figure["value"] == pytest.approx(math.exp(15.0 / 11))
    assert figure["n"] == 2


def test_examples_a_metric_does_not_apply_to_are_left_out():
    sample = Sample.of([None, 4.0, None, 2.0])

    figure = interval(sample, COUNT, SEED)

    assert figure["value"] == 3.0
    assert figure["n"] == 2


def test_a_metric_that_applies_to_no_example_is_not_computed_and_has_no_number():
    figure = interval(Sample.of([None, None]), COUNT, SEED)

    assert figure["computed"] is False
    assert "none of the validation examples" in figure["reason"]
    assert "value" not in figure
    assert not is_computed(figure)


def test_paired_comparison_finds_a_small_consistent_gain_that_unpaired_intervals_hide():
    rng = np.random.default_rng(1)
    # Examples vary a lot; the second model is better on every one by a little.
    base = rng.uniform(0.0, 1.0, 80)
    better = base + 0.03
    first, second = Sample.of(list(better)), Sample.of(list(base))

    compared = compare(first, second, greater_is_better=True, count=COUNT, seed=SEED)
    alone = interval(first, COUNT, SEED), interval(second, COUNT, SEED)

    assert compared["difference"] == pytest.approx(0.03)
    assert compared["significant"] is True
    assert compared["better"] is True
    assert compared["low"] > 0
    # Apart, their intervals overlap: only the pairing shows the difference is real.
    assert alone[0]["low"] < alone[1]["high"]


def test_a_difference_inside_its_interval_is_neither_better_nor_worse():
    rng = np.random.default_rng(2)
    first = Sample.of(list(rng.normal(0.5, 0.3, 40)))
    second = Sample.of(list(rng.normal(0.5, 0.3, 40)))

    compared = compare(first, second, greater_is_better=True, count=COUNT, seed=SEED)

    assert compared["low"] < 0 < compared["high"]
    assert compared["significant"] is False
    assert compared["better"] is None


def test_lower_is_better_turns_a_drop_into_an_improvement():
    lower = Sample.of([9.0, 9.5, 10.0, 9.0], tokens=[5, 5, 5, 5])
    higher = Sample.of([12.0, 12.5, 13.0, 12.0], tokens=[5, 5, 5, 5])

    compared = compare(lower, higher, greater_is_better=False, count=COUNT, seed=SEED)

    assert compared["difference"] < 0
    assert compared["better"] is True
    assert compared["greater_is_better"] is False


def test_comparison_needs_the_same_examples():
    with pytest.raises(ValueError, match="same examples"):
        compare(Sample.of([1.0, 2.0]), Sample.of([1.0]), True, COUNT, SEED)
