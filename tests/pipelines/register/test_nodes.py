"""Tests for the register nodes: the quality gate, the lineage tags and the model card.

The evaluation figures are made the way the evaluate stage makes them, from per-example scores
through ``summarise_scores`` and ``report_metrics``, so the gate sees real intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import RETRIEVAL_OFF, parameters_of

from llm_pipeline.datasets import Folder, ModelFolder, RegistryCandidate
from llm_pipeline.pipelines.evaluate.nodes import report_metrics, summarise_scores
from llm_pipeline.pipelines.register.nodes import (
    decide_promotion,
    prepare_registration,
    retrieval_tag,
)

PARAMS = parameters_of("register", env="base", primary_metric="similarity")
EVALUATE = parameters_of("evaluate")
EXAMPLES = 60
CANARY = {
    "exposure": 1.5,
    "max_exposure": 9.97,
    "rank": 350,
    "candidates": 1000,
    "regurgitated": False,
}


def scores(similarity: np.ndarray, rouge: np.ndarray, nll: float = 20.0) -> dict:
    return {
        "perplexity": {"values": [nll] * EXAMPLES, "tokens": [10] * EXAMPLES},
        "rouge_l": {"values": list(rouge)},
        "similarity": {"values": list(similarity)},
        "fluency": {"computed": False, "reason": "no judge configured"},
    }


def evaluation(
    gain: float | None = 0.05,
    rouge_change: float = 0.0,
    noise: float = 0.0,
    base_gap: float = 0.2,
    rouge_noise: float = 0.0,
) -> dict:
    """Figures of base, sft and aligned, and of a champion unless ``gain`` is None: the aligned
    model's similarity is the champion's plus ``gain`` (plus per-example ``noise``), the base
    model's ``base_gap`` below the champion's; the aligned model's ROUGE-L is the champion's
    times ``1 + rouge_change``, plus per-example ``rouge_noise`` that averages to zero."""
    rng = np.random.default_rng(5)
    held = rng.uniform(0.3, 0.7, EXAMPLES)
    rouge = rng.uniform(0.2, 0.4, EXAMPLES)
    jitter = rng.normal(0.0, noise, EXAMPLES)
    rouge_jitter = rng.normal(0.0, rouge_noise, EXAMPLES)
    models = {
        "base": scores(held - base_gap, rouge - 0.1, nll=40.0),
        "sft": scores(held - 0.01, rouge),
        "aligned": scores(
            held + (gain or 0.0) + jitter,
            rouge * (1 + rouge_change) + rouge_jitter - rouge_jitter.mean(),
        ),
    }
    if gain is not None:
        models["champion"] = scores(held, rouge)
    return summarised(models)


def summarised(models: dict[str, dict]) -> dict:
    """metrics.json of these per-example scores, as the evaluate stage writes it."""
    summary = summarise_scores(models, {}, EVALUATE)
    metrics, _ = report_metrics(summary, {"method": "dpo"}, CANARY, {"enabled": False}, {})
    return metrics


def champion(version: int = 3) -> dict:
    return {"name": "llm-pipeline", "version": version, "run_id": "abc", "source": "", "tags": {}}


# --- decide_promotion --------------------------------------------------------------------


def test_first_model_is_promoted_when_there_is_no_champion():
    decision = decide_promotion(evaluation(gain=None), None, PARAMS)

    assert decision["promote"] is True
    assert decision["aliases"] == ["challenger", "champion"]
    assert decision["champion_version"] is None
    assert "no champion" in decision["reason"]


@pytest.mark.parametrize("base_gap", [0.0, -0.05])
def test_a_candidate_no_better_than_the_base_model_is_never_promoted(base_gap):
    decision = decide_promotion(evaluation(gain=None, base_gap=base_gap), None, PARAMS)

    assert decision["eligible"] is False
    assert decision["promote"] is False
    assert decision["aliases"] == ["challenger"]
    assert "against the base model" in decision["reason"]


def test_the_reason_says_the_candidate_beat_the_base_model():
    decision = decide_promotion(evaluation(gain=None), None, PARAMS)

    assert "similarity +0.2 [" in decision["reason"]
    assert "against the base model: better" in decision["reason"]


def test_a_gain_beyond_its_interval_is_promoted_and_the_reason_gives_the_interval():
    decision = decide_promotion(evaluation(gain=0.05), champion(), PARAMS)

    assert decision["promote"] is True
    assert decision["status"] == "champion"
    assert "similarity +0.05 [" in decision["reason"]
    assert "against champion v3: better" in decision["reason"]


def test_a_gain_inside_its_interval_is_not_promoted():
    metrics = evaluation(gain=0.005, noise=0.1)
    compared = metrics["comparisons"]["aligned_vs_champion"]["similarity"]
    assert compared["low"] < 0 < compared["high"]

    decision = decide_promotion(metrics, champion(), PARAMS)

    assert decision["promote"] is False
    assert decision["aliases"] == ["challenger"]
    assert "within its interval" in decision["reason"]


def test_a_worse_model_is_never_promoted():
    decision = decide_promotion(evaluation(gain=-0.05), champion(), PARAMS)

    assert decision["promote"] is False
    assert decision["eligible"] is False
    assert "worse" in decision["reason"]


def interval_text(compared: dict) -> str:
    return f"{compared['difference']:+.4g} [{compared['low']:+.4g}, {compared['high']:+.4g}]"


def test_a_regression_past_the_tolerance_and_its_interval_blocks_a_better_primary_metric():
    metrics = evaluation(gain=0.05, rouge_change=-0.10)
    compared = metrics["comparisons"]["aligned_vs_champion"]["rouge_l"]
    # Truly worse: the whole interval lies beyond the 2% tolerance on the worse side.
    assert compared["high"] < -0.02 * metrics["champion"]["rouge_l"]["value"]

    strict = decide_promotion(metrics, champion(), PARAMS)
    lenient = decide_promotion(metrics, champion(), {**PARAMS, "tolerances": {"rouge_l": 0.15}})

    assert strict["promote"] is False
    assert "similarity +0.05 [" in strict["reason"]
    assert "against champion v3: better" in strict["reason"]
    assert (
        "rouge_l is 10.0% worse than champion v3's (tolerance 2.0%) and its interval excludes "
        f"zero: {interval_text(compared)}"
    ) in strict["reasons"]
    assert lenient["promote"] is True


def test_a_noisy_but_equal_metric_does_not_block_a_better_primary_metric():
    metrics = evaluation(gain=0.05, rouge_change=-0.03, rouge_noise=0.1)
    compared = metrics["comparisons"]["aligned_vs_champion"]["rouge_l"]
    held = metrics["champion"]["rouge_l"]["value"]
    # Worse than the 2% tolerance on its point estimate (the old gate blocked this), but the
    # interval of the paired difference straddles zero: noise, no evidence of a regression.
    assert compared["difference"] < -0.02 * held
    assert compared["low"] < 0 < compared["high"]
    assert metrics["comparisons"]["aligned_vs_champion"]["similarity"]["better"] is True

    decision = decide_promotion(metrics, champion(), PARAMS)

    assert decision["promote"] is True
    assert decision["status"] == "champion"
    share = -compared["difference"] / held
    assert (
        f"rouge_l is {share:.1%} worse than champion v3's on its point estimate (tolerance "
        f"2.0%), but its interval does not show a regression: {interval_text(compared)}"
    ) in decision["reasons"]


def test_a_shown_regression_beyond_the_tolerance_blocks_though_its_interval_reaches_it():
    # The rule: the point estimate beyond the tolerance and the interval excluding zero, not the
    # whole interval beyond the tolerance (a gate that wide would pass real regressions).
    metrics = evaluation(gain=0.05, rouge_change=-0.05, rouge_noise=0.05)
    compared = metrics["comparisons"]["aligned_vs_champion"]["rouge_l"]
    margin = 0.02 * metrics["champion"]["rouge_l"]["value"]
    assert compared["difference"] < -margin < compared["high"] < 0

    decision = decide_promotion(metrics, champion(), PARAMS)

    assert decision["promote"] is False
    assert interval_text(compared) in decision["reason"]
    assert "its interval excludes zero" in decision["reason"]


def test_a_metric_without_a_paired_interval_is_judged_on_its_point_estimates():
    # ROUGE-L applies to the first half of the examples for the candidate and to the second
    # half for the champion: both figures exist, but no example pairs them.
    half = EXAMPLES // 2
    rng = np.random.default_rng(5)
    held = rng.uniform(0.3, 0.7, EXAMPLES)
    ones = np.ones(EXAMPLES)
    models = {
        "base": scores(held - 0.2, 0.2 * ones, nll=40.0),
        "sft": scores(held, 0.3 * ones),
        "aligned": scores(held + 0.05, [0.27] * half + [None] * half),
        "champion": scores(held, [None] * half + [0.3] * half),
    }
    metrics = summarised(models)
    compared = metrics["comparisons"]["aligned_vs_champion"]["rouge_l"]
    assert compared == {
        "computed": False,
        "reason": "no validation example that both figures cover",
    }

    strict = decide_promotion(metrics, champion(), PARAMS)
    lenient = decide_promotion(metrics, champion(), {**PARAMS, "tolerances": {"rouge_l": 0.15}})

    assert strict["promote"] is False
    assert (
        "rouge_l is 10.0% worse than champion v3's (0.27 against 0.3; tolerance 2.0%), judged on "
        "the point estimates alone: no paired interval (no validation example that both figures "
        "cover)"
    ) in strict["reasons"]
    assert lenient["promote"] is True
    assert "rouge_l is within its tolerance of champion v3's" in lenient["reason"]
    assert "judged on the point estimates alone" in lenient["reason"]


def test_a_regression_within_the_tolerance_is_allowed():
    decision = decide_promotion(evaluation(gain=0.05, rouge_change=-0.01), champion(), PARAMS)

    assert decision["promote"] is True


def test_metrics_that_were_not_computed_neither_block_nor_count():
    metrics = evaluation(gain=0.05)
    assert metrics["aligned"]["fluency"] == {"computed": False, "reason": "no judge configured"}

    assert decide_promotion(metrics, champion(), PARAMS)["promote"] is True


def test_an_unmeasured_primary_metric_promotes_nothing():
    decision = decide_promotion(
        evaluation(gain=None), None, {**PARAMS, "primary_metric": "fluency"}
    )

    assert decision["promote"] is False
    assert "was not computed" in decision["reason"]


def test_a_champion_that_was_not_evaluated_is_not_replaced():
    decision = decide_promotion(evaluation(gain=None), champion(), PARAMS)

    assert decision["promote"] is False
    assert "was not evaluated" in decision["reason"]


def test_with_approval_required_a_passing_model_waits_for_a_person():
    decision = decide_promotion(
        evaluation(gain=0.05), champion(), {**PARAMS, "require_approval": True}
    )

    assert decision["eligible"] is True
    assert decision["promote"] is False
    assert decision["status"] == "awaiting approval"
    assert decision["aliases"] == ["challenger"]


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="greater_is_better"):
        decide_promotion(evaluation(gain=None), None, {**PARAMS, "greater_is_better": True})


# --- prepare_registration ----------------------------------------------------------------


def folder(root: Path, name: str, run_id: str, config: str = "") -> ModelFolder:
    path = root / name
    path.mkdir()
    (path / "lineage.json").write_text(json.dumps({"mlflow_run_id": run_id}))
    (path / "llm_pipeline_config.yaml").write_text(config)
    return ModelFolder(path)


@pytest.fixture
def models(tmp_path) -> dict[str, ModelFolder]:
    return {
        "aligned_model": folder(tmp_path, "aligned", "run-align"),
        "base_model": folder(tmp_path, "base", "run-pretrain"),
        "sft_model": folder(tmp_path, "sft", "run-sft", "method: lora\n"),
        "reward_model": folder(tmp_path, "reward", "run-reward"),
    }


LINEAGE = {
    "git_commit": "0123abcd",
    "git_dirty": False,
    "dvc": {"data/01_raw": "d41d8cd98f00b204e9800998ecf8427e.dir"},
    "data_md5": {"data/03_primary/documents_train.jsonl": "9e107d9d372bb6826bd81d3542a419d6"},
}
REPORT = {
    "success": True,
    "datasets": [
        {"successful_expectations": 7, "evaluated_expectations": 7},
        {"successful_expectations": 5, "evaluated_expectations": 5},
    ],
}


RETRIEVAL = {**RETRIEVAL_OFF, "enabled": True, "max_words": 100, "lexical_weight": 0.0}


def register(
    models, metrics, decision, report=REPORT, retrieval=RETRIEVAL, params=PARAMS
) -> RegistryCandidate:
    return prepare_registration(
        **models,
        decision=decision,
        evaluation_metrics=metrics,
        validation_report=report,
        lineage=LINEAGE,
        passage_index=Folder(Path("data/05_model_input/passage_index")),
        params=params,
        retrieval_params=retrieval,
    )


def test_the_weights_choice_reaches_the_registry_and_the_model_card(models):
    metrics = evaluation(gain=0.05)
    decision = decide_promotion(metrics, champion(), PARAMS)

    adapters = register(models, metrics, decision)
    full = register(models, metrics, decision, params={**PARAMS, "weights": "full"})

    assert PARAMS["weights"] == "adapters"
    assert adapters.weights == "adapters"
    assert "Registered as the LoRA adapters its stages trained" in adapters.card
    assert full.weights == "full"
    assert "Registered as full weights" in full.card
    with pytest.raises(ValueError, match="weights"):
        register(models, metrics, decision, params={**PARAMS, "weights": "adapter"})


def test_the_candidate_carries_the_passage_index_it_was_trained_with(models):
    metrics = evaluation(gain=0.05)
    decision = decide_promotion(metrics, champion(), PARAMS)

    grounded = register(models, metrics, decision)
    plain = register(models, metrics, decision, retrieval={**RETRIEVAL, "enabled": False})

    assert grounded.index == Path("data/05_model_input/passage_index")
    assert grounded.tags["serving.retrieval"].startswith("the top 3 passages")
    assert "answers from the documents it was trained with" in grounded.card
    assert plain.index is None
    assert plain.tags["serving.retrieval"] == "off"
    assert "retrieval off" in plain.card


def test_registration_carries_the_decision_metrics_and_their_intervals(models):
    metrics = evaluation(gain=0.05)
    decision = decide_promotion(metrics, champion(), PARAMS)

    candidate = register(models, metrics, decision)

    assert candidate.model == models["aligned_model"]
    assert candidate.aliases == ("challenger", "champion")
    similarity = metrics["aligned"]["similarity"]
    assert float(candidate.tags["metric.similarity"]) == similarity["value"]
    assert candidate.tags["metric.similarity.interval"].startswith(f"[{similarity['low']:.6g}")
    assert candidate.tags["metric.fluency"] == "not computed: no judge configured"
    assert candidate.tags["promotion.decision"] == "champion"
    assert candidate.tags["promotion.reason"] == decision["reason"]
    assert candidate.tags["promotion.previous_champion"] == "3"
    assert all(isinstance(value, str) for value in candidate.tags.values())


def test_registration_traces_the_version_to_code_data_and_runs(models):
    metrics = evaluation(gain=None)

    tags = register(models, metrics, decide_promotion(metrics, None, PARAMS)).tags

    assert tags["lineage.git_commit"] == "0123abcd"
    assert tags["lineage.git_dirty"] == "false"
    assert tags["lineage.dvc.data/01_raw"] == LINEAGE["dvc"]["data/01_raw"]
    assert tags["lineage.data.data/03_primary/documents_train.jsonl"].startswith("9e107d9d")
    assert tags["lineage.run.pretrain"] == "run-pretrain"
    assert tags["lineage.run.finetune"] == "run-sft"
    assert tags["lineage.run.reward"] == "run-reward"
    assert tags["lineage.run.align"] == "run-align"
    assert tags["validation.expectations"] == "12/12 expectations on 2 datasets"
    assert tags["training.method"] == "pretrain + sft (lora) + dpo"
    assert tags["promotion.previous_champion"] == "none"


@pytest.mark.parametrize("success, expected", [(True, "passed"), (False, "failed")])
def test_registration_records_whether_the_data_contracts_held(models, success, expected):
    metrics = evaluation(gain=None)
    decision = decide_promotion(metrics, None, PARAMS)

    candidate = register(models, metrics, decision, {**REPORT, "success": success})

    assert candidate.tags["data_contracts"] == expected


def test_model_card_states_data_method_metrics_use_and_limits(models):
    metrics = evaluation(gain=0.05)

    card = register(models, metrics, decide_promotion(metrics, champion(), PARAMS)).card

    assert card.startswith("# llm-pipeline model card")
    for heading in ("## Method", "## Data", "## Evaluation", "## Memorisation", "## Intended use"):
        assert heading in card
    assert "pretrain + sft (lora) + dpo" in card
    assert "0123abcd" in card
    assert "data/03_primary/documents_train.jsonl" in card
    assert "| similarity |" in card
    assert "fluency not computed: no judge configured" in card
    assert "Canary exposure 1.50 of at most 9.97" in card


def test_the_retrieval_tag_names_what_the_prompts_get_from_the_index():
    from llm_pipeline.retrieval import RetrievalConfig

    retrieval = parameters_of("retrieval", env="base")
    both = RetrievalConfig.model_validate({**retrieval, "top_k": 3, "past_answers": 2})
    answers = RetrievalConfig.model_validate({**retrieval, "top_k": 0, "past_answers": 2})
    passages = RetrievalConfig.model_validate({**retrieval, "top_k": 3, "past_answers": 0})

    assert retrieval_tag(both) == (
        "the top 3 passages and 2 past answers of the index registered with the model"
    )
    assert retrieval_tag(answers) == "2 past answers of the index registered with the model"
    one = RetrievalConfig.model_validate({**retrieval, "top_k": 0, "past_answers": 1})
    assert retrieval_tag(one) == "the first past answer of the index registered with the model"
    assert retrieval_tag(passages) == "the top 3 passages of the index registered with the model"
