"""AI feedback on tiny real models: sampling, the two judges, and pairs that ingest accepts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipelines.feedback.fixtures import (
    build_length_reward_model,
    build_position_biased_judge,
    feedback_params,
)
from support import PROJECT_ROOT

from llm_pipeline.datasets import JSONLinesDataset, RawFolderDataset
from llm_pipeline.pipelines.feedback.judges import judge_with_principles, judge_with_reward_model
from llm_pipeline.pipelines.feedback.nodes import make_preference_pairs
from llm_pipeline.pipelines.feedback.sampling import sample_answers
from llm_pipeline.pipelines.ingest.nodes import read_preferences

PROMPTS = ["Can I return my tent?", "How long does the rain jacket take to ship?"]
GENERATION = {"max_new_tokens": 10, "temperature": 1.0, "top_p": 0.95, "seed": 7, "batch_size": 4}
# Answers of known lengths: the length reward model must rank them by length.
ANSWERS = [
    [
        "Yes.",
        "The tent can be returned within two weeks of delivery, unused.",
        "Yes, within two weeks.",
        "",
    ],
    ["It ships in 3 days.", "3 days", "The rain jacket ships in 3 days and arrives within 5 days."],
]
PRINCIPLES = ["The answer is short.", "The answer is polite."]


@pytest.fixture(scope="module")
def length_reward_model(tiny_model_dir, tmp_path_factory) -> Path:
    return build_length_reward_model(tmp_path_factory.mktemp("reward"), tiny_model_dir)


# --- sampling --------------------------------------------------------------------------------


def test_sampling_gives_n_answers_per_prompt_the_same_for_a_seed(tiny_model_dir):
    import torch

    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    first = sample_answers(tiny_model_dir, PROMPTS, 3, GENERATION)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random state is untouched

    assert [len(answers) for answers in first] == [3, 3]
    assert all(isinstance(answer, str) for answers in first for answer in answers)
    assert all(len(set(answers)) > 1 for answers in first)  # sampled, not greedy
    assert sample_answers(tiny_model_dir, PROMPTS, 3, GENERATION) == first
    other_seed = sample_answers(tiny_model_dir, PROMPTS, 3, {**GENERATION, "seed": 8})
    assert other_seed != first


def test_a_prompt_may_be_chat_turns(tiny_model_dir):
    as_text = sample_answers(tiny_model_dir, PROMPTS[:1], 2, GENERATION)
    as_turns = sample_answers(
        tiny_model_dir, [[{"role": "user", "content": PROMPTS[0]}]], 2, GENERATION
    )
    assert as_text == as_turns


def test_unknown_generation_keys_are_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="temprature"):
        sample_answers(tiny_model_dir, PROMPTS, 2, {**GENERATION, "temprature": 0.7})


# --- the reward model judge -------------------------------------------------------------------


def test_the_reward_model_judge_scores_by_the_reward_model(length_reward_model):
    judgement = judge_with_reward_model(length_reward_model, PROMPTS, ANSWERS, batch_size=2)
    assert judgement.judge == length_reward_model.as_posix()
    for answers, scores in zip(ANSWERS, judgement.scores, strict=True):
        by_score = [answer for _, answer in sorted(zip(scores, answers, strict=True))]
        assert by_score == sorted(answers, key=len)


def test_pairs_follow_the_reward_model_and_carry_their_origin(length_reward_model):
    judgement = judge_with_reward_model(length_reward_model, PROMPTS, ANSWERS, batch_size=4)
    params = feedback_params(min_margin={"reward_model": 0.0, "principles": 0.1})
    pairs, report = make_preference_pairs(PROMPTS, ANSWERS, asdict(judgement), params)

    assert list(pairs["prompt"]) == PROMPTS
    # The longest answer against the shortest one that is not empty.
    assert list(pairs["chosen"]) == [ANSWERS[0][1], ANSWERS[1][2]]
    assert list(pairs["rejected"]) == ["Yes.", "3 days"]
    assert (pairs["origin"] == "ai_feedback").all()
    assert (pairs["judge"] == length_reward_model.as_posix()).all()
    assert (pairs["chosen_score"] > pairs["rejected_score"]).all()
    assert report["pairs_written"] == 2
    assert report["empty_answers"] == 1


def test_a_classifier_with_several_labels_is_no_reward_model(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig.from_pretrained(tiny_model_dir, num_labels=3)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="3 labels; a reward model has one"):
        judge_with_reward_model(tmp_path, PROMPTS, ANSWERS, batch_size=4)


# --- the principles judge ---------------------------------------------------------------------


def test_the_principles_judge_gives_a_choice_for_every_pair(tiny_model_dir):
    judgement = judge_with_principles(tiny_model_dir, PRINCIPLES, PROMPTS, ANSWERS, batch_size=4)
    for answers, comparisons, scores in zip(
        ANSWERS, judgement.comparisons, judgement.scores, strict=True
    ):
        n = len(answers)
        assert sorted(tuple(c["answers"]) for c in comparisons) == [
            (i, j) for i in range(n) for j in range(i + 1, n)
        ]
        for found in comparisons:
            assert found["choice"] in found["answers"]
            assert 0 < found["p_first_better"] < 1
        assert len(scores) == n
        # Every comparison hands out one win between its two answers.
        assert sum(scores) * (n - 1) == pytest.approx(n * (n - 1) / 2)
    assert judgement.judge.startswith(f"{tiny_model_dir} principles:")


def test_the_principles_judge_does_not_depend_on_where_an_answer_stands(tiny_model_dir):
    forward = judge_with_principles(tiny_model_dir, PRINCIPLES, PROMPTS, ANSWERS, batch_size=16)
    reversed_answers = [list(reversed(answers)) for answers in ANSWERS]
    backward = judge_with_principles(
        tiny_model_dir, PRINCIPLES, PROMPTS, reversed_answers, batch_size=3
    )
    for scores, reversed_scores in zip(forward.scores, backward.scores, strict=True):
        assert list(reversed(reversed_scores)) == pytest.approx(scores, abs=1e-6)
    assert any(
        score != pytest.approx(0.5, abs=1e-9) for scores in forward.scores for score in scores
    )


def test_asking_in_both_orders_cancels_a_judge_that_always_says_a(tiny_model_dir, tmp_path):
    judge = build_position_biased_judge(tmp_path / "judge", tiny_model_dir)
    judgement = judge_with_principles(judge, PRINCIPLES, PROMPTS, ANSWERS, batch_size=8)
    comparisons = [c for per_prompt in judgement.comparisons for c in per_prompt]
    assert all(c["position_bias"] > 1 for c in comparisons)  # it strongly prefers "A"
    assert all(c["p_first_better"] == pytest.approx(0.5) for c in comparisons)
    assert not any(c["consistent"] for c in comparisons)
    params = feedback_params(judge={**feedback_params()["judge"], "model": str(judge)})
    pairs, report = make_preference_pairs(PROMPTS, ANSWERS, asdict(judgement), params)
    assert pairs.empty
    assert report["skipped_prompts"]["tied_or_below_min_margin"] == len(PROMPTS)
    assert report["comparisons_consistent_in_both_orders"] == 0


def test_the_judge_records_which_principles_it_applied(tiny_model_dir):
    one = judge_with_principles(tiny_model_dir, PRINCIPLES, PROMPTS[:1], ANSWERS[:1], 8)
    other = judge_with_principles(tiny_model_dir, PRINCIPLES[:1], PROMPTS[:1], ANSWERS[:1], 8)
    assert one.judge != other.judge


def test_a_judge_needs_principles(tiny_model_dir):
    with pytest.raises(ValueError, match="principles is empty"):
        judge_with_principles(tiny_model_dir, [], PROMPTS, ANSWERS, 8)


# --- what ingest makes of the pairs -----------------------------------------------------------


def test_ingest_reads_every_written_pair_as_a_valid_preference(tmp_path):
    raw = tmp_path / "01_raw" / "preferences"
    pairs = pd.DataFrame(
        {
            "prompt": PROMPTS,
            "chosen": [ANSWERS[0][1], ANSWERS[1][2]],
            "rejected": ["Yes.", "3 days"],
            "origin": "ai_feedback",
            "judge": "reward_model",
            "chosen_score": [0.9, 0.8],
            "rejected_score": [0.1, 0.2],
            "created_at": "2025-01-01T00:00:00+00:00",
        }
    )
    for version in ("2025-01-01T00.00.00.000Z", "2025-01-02T00.00.00.000Z"):
        from kedro.io.core import Version

        JSONLinesDataset(
            filepath=str(raw / "ai_feedback" / "ai_feedback.jsonl"), version=Version(None, version)
        ).save(pairs)
    ingest = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ingest.yml").read_text())
    params = {**ingest["ingest"], "workers": 1, "strict": True}

    rows, quarantine, files = read_preferences(RawFolderDataset(str(raw)).load(), params)

    assert quarantine.empty
    assert len(files) == 2  # one file per feedback run, both read
    assert len(rows) == 2 * len(pairs)
    assert set(rows["category"]) == {"ai_feedback"}
    assert list(rows["chosen"][:2]) == list(pairs["chosen"])
    if "origin" in rows:  # kept by ingest once it records where a pair came from
        assert set(rows["origin"]) == {"ai_feedback"}
