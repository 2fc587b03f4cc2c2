"""Tests for the register nodes: the promotion rule and the tags that explain it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_pipeline.datasets import ModelFolder, RegistryCandidate
from llm_pipeline.pipelines.register.nodes import decide_promotion, prepare_registration

PARAMS = {"candidate": "aligned", "primary_metric": "perplexity", "greater_is_better": False}


def evaluation(perplexity: float = 10.0, rouge: float = 0.4) -> dict:
    return {
        "base": {"perplexity": 40.0, "rouge_l": 0.1, "answer_words": 12.0, "examples": 20},
        "sft": {"perplexity": 14.0, "rouge_l": 0.3, "answer_words": 18.0, "examples": 20},
        "aligned": {
            "perplexity": perplexity,
            "rouge_l": rouge,
            "answer_words": 21.5,
            "examples": 20,
        },
    }


def champion(version: int = 3, **tags: str) -> dict:
    return {
        "name": "llm-pipeline",
        "version": version,
        "run_id": "abc123",
        "source": "models:/m-1",
        "tags": tags,
    }


# --- decide_promotion --------------------------------------------------------------------


def test_first_model_is_promoted_when_there_is_no_champion():
    decision = decide_promotion(evaluation(), None, PARAMS)

    assert decision["promote"] is True
    assert decision["aliases"] == ["challenger", "champion"]
    assert decision["champion_version"] is None
    assert decision["champion_value"] is None
    assert decision["candidate_value"] == 10.0
    assert "no champion" in decision["reason"]


def test_lower_perplexity_than_the_champion_is_promoted():
    decision = decide_promotion(
        evaluation(perplexity=9.5), champion(**{"metric.perplexity": "12.5"}), PARAMS
    )

    assert decision["promote"] is True
    assert decision["aliases"] == ["challenger", "champion"]
    assert decision["champion_version"] == 3
    assert decision["champion_value"] == 12.5


def test_equal_perplexity_is_at_least_as_good_and_promoted():
    decision = decide_promotion(
        evaluation(perplexity=12.5), champion(**{"metric.perplexity": "12.5"}), PARAMS
    )

    assert decision["promote"] is True
    assert decision["aliases"] == ["challenger", "champion"]


def test_higher_perplexity_stays_challenger_and_the_reason_names_both_values():
    decision = decide_promotion(
        evaluation(perplexity=13.25), champion(**{"metric.perplexity": "12.5"}), PARAMS
    )

    assert decision["promote"] is False
    assert decision["aliases"] == ["challenger"]
    assert "13.2500" in decision["reason"]
    assert "12.5000" in decision["reason"]
    assert "v3" in decision["reason"]


def test_greater_is_better_flips_the_comparison():
    params = {**PARAMS, "primary_metric": "rouge_l", "greater_is_better": True}
    holder = champion(**{"metric.rouge_l": "0.35"})

    better = decide_promotion(evaluation(rouge=0.4), holder, params)
    worse = decide_promotion(evaluation(rouge=0.3), holder, params)

    assert better["promote"] is True
    assert better["candidate_value"] == 0.4
    assert worse["promote"] is False
    assert worse["aliases"] == ["challenger"]


def test_candidate_is_the_model_named_in_params():
    params = {**PARAMS, "candidate": "sft"}

    decision = decide_promotion(
        evaluation(perplexity=9.0), champion(**{"metric.perplexity": "12.5"}), params
    )

    assert decision["candidate_value"] == 14.0
    assert decision["promote"] is False


def test_champion_without_the_metric_tag_is_not_replaced():
    decision = decide_promotion(
        evaluation(perplexity=1.0), champion(**{"metric.rouge_l": "0.2"}), PARAMS
    )

    assert decision["promote"] is False
    assert decision["aliases"] == ["challenger"]
    assert decision["champion_value"] is None
    assert "has no recorded perplexity" in decision["reason"]


# --- prepare_registration ----------------------------------------------------------------


@pytest.fixture
def aligned_model(tmp_path) -> ModelFolder:
    return ModelFolder(Path(tmp_path / "aligned_model"))


@pytest.mark.parametrize("champion_perplexity, promote", [("12.5", True), ("9.0", False)])
def test_registration_carries_the_decision_and_every_candidate_metric(
    aligned_model, champion_perplexity, promote
):
    metrics = evaluation(perplexity=9.5)
    decision = decide_promotion(
        metrics, champion(**{"metric.perplexity": champion_perplexity}), PARAMS
    )

    candidate = prepare_registration(aligned_model, decision, metrics, {"success": True}, PARAMS)

    assert isinstance(candidate, RegistryCandidate)
    assert candidate.model == aligned_model
    assert candidate.aliases == tuple(decision["aliases"])
    assert ("champion" in candidate.aliases) is promote
    for name, value in metrics["aligned"].items():
        assert float(candidate.tags[f"metric.{name}"]) == pytest.approx(value)
    assert candidate.tags["promotion.reason"] == decision["reason"]
    assert candidate.tags["promotion.decision"] == ("champion" if promote else "challenger only")
    assert all(isinstance(value, str) for value in candidate.tags.values())


@pytest.mark.parametrize("success, expected", [(True, "passed"), (False, "failed")])
def test_registration_records_whether_the_data_contracts_held(aligned_model, success, expected):
    decision = decide_promotion(evaluation(), None, PARAMS)

    candidate = prepare_registration(
        aligned_model, decision, evaluation(), {"success": success}, PARAMS
    )

    assert candidate.tags["data_contracts"] == expected


def test_metric_tags_are_what_the_next_decision_compares_against(aligned_model):
    metrics = evaluation(perplexity=11.0)
    first = prepare_registration(
        aligned_model, decide_promotion(metrics, None, PARAMS), metrics, {"success": True}, PARAMS
    )
    recorded = champion(**first.tags)

    assert decide_promotion(evaluation(perplexity=11.5), recorded, PARAMS)["promote"] is False
    assert decide_promotion(evaluation(perplexity=10.5), recorded, PARAMS)["promote"] is True


def test_same_figures_as_the_champion_promote_after_the_tag_round_trip(aligned_model):
    params = {**PARAMS, "primary_metric": "rouge_l", "greater_is_better": True}
    metrics = evaluation(rouge=0.123456789)
    registered = prepare_registration(
        aligned_model, decide_promotion(metrics, None, params), metrics, {"success": True}, params
    )

    decision = decide_promotion(metrics, champion(**registered.tags), params)

    assert decision["promote"] is True
