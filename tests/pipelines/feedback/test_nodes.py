"""The feedback nodes on small fixtures: prompts, pairs, what is skipped, and the parameters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from pydantic import ValidationError

from llm_pipeline.datasets import Folder, ModelFolder
from llm_pipeline.pipelines.feedback.nodes import (
    FeedbackConfig,
    check_judge,
    ground_prompts,
    make_preference_pairs,
    select_prompts,
)
from llm_pipeline.settings import CONFIG_LOADER_ARGS

CONF = Path(__file__).resolve().parents[3] / "conf"


def parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    return loader["parameters"]


@pytest.fixture
def params() -> dict:
    return parameters("local")["feedback"]


def turns(*contents: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"] * len(contents)
    return [{"role": role, "content": text} for role, text in zip(roles, contents, strict=False)]


PREFERENCES = pd.DataFrame(
    {
        "prompt": ["Can I return my tent?", "Does the stove ship fast?", "Can I return my tent?"],
        "chosen": ["Yes, within two weeks.", "It ships in 3 days.", "Yes."],
        "rejected": ["No.", "Maybe.", "No idea."],
    }
)
CONVERSATIONS = pd.DataFrame(
    {
        "messages": [
            turns("Hello, how can I help?", "Hi!", "And the boots?", "They ship in 5 days."),
            turns("Does the stove ship fast?", "Yes."),
        ]
    }
)


# --- the parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["local", "tiny"])
def test_the_parameters_file_is_a_valid_feedback_config(env):
    config = FeedbackConfig.model_validate(parameters(env)["feedback"])
    assert config.judge.model == "reward_model"
    assert config.answers_per_prompt >= 2
    assert config.principles


def test_a_misspelt_key_is_refused(params):
    with pytest.raises(ValidationError, match="answer_per_prompt"):
        FeedbackConfig.model_validate({**params, "answer_per_prompt": 4})


def test_the_margin_is_the_judges_own(params):
    params["min_margin"] = {"reward_model": 2.0, "principles": 0.3}
    assert FeedbackConfig.model_validate(params).margin() == 2.0
    params["judge"] = {**params["judge"], "model": "path/to/judge"}
    assert FeedbackConfig.model_validate(params).margin() == 0.3


# --- prompts ----------------------------------------------------------------------------------


def test_prompts_are_distinct_and_conversations_give_their_first_user_turn(params):
    prompts = select_prompts(PREFERENCES, CONVERSATIONS, params)
    assert prompts == [
        "Can I return my tent?",
        "Does the stove ship fast?",
        "Hello, how can I help?",
    ]


def test_prompts_come_only_from_the_named_sources(params):
    params["prompts"] = {"sources": ["conversations"], "count": 10}
    assert select_prompts(PREFERENCES, CONVERSATIONS, params) == [
        "Hello, how can I help?",
        "Does the stove ship fast?",
    ]


def test_count_picks_the_same_prompts_for_a_seed(params):
    many = pd.DataFrame({"prompt": [f"Question number {i}?" for i in range(50)]})
    params["prompts"] = {"sources": ["preferences"], "count": 5}
    picked = select_prompts(many, CONVERSATIONS, params)
    assert len(picked) == 5
    assert picked == select_prompts(many, CONVERSATIONS, params)
    assert picked == sorted(picked, key=lambda p: int(p.split()[-1][:-1]))  # order kept
    params["generation"] = {**params["generation"], "seed": params["generation"]["seed"] + 1}
    assert select_prompts(many, CONVERSATIONS, params) != picked


def test_no_prompt_is_an_error_that_says_what_to_do(params):
    empty = pd.DataFrame()
    with pytest.raises(ValueError, match="run the default pipeline first"):
        select_prompts(empty, empty, params)


# --- the judge --------------------------------------------------------------------------------


def test_a_judge_model_that_is_not_a_folder_is_named(params, tmp_path):
    params["judge"] = {**params["judge"], "model": str(tmp_path / "no-such-judge")}
    with pytest.raises(FileNotFoundError, match="no-such-judge"):
        check_judge(ModelFolder(tmp_path), params)


def test_a_reward_model_that_was_not_trained_says_how_to_train_one(params, tmp_path):
    params["judge"] = {**params["judge"], "model": "reward_model"}
    none = ModelFolder.untrained(tmp_path / "reward_model", "align.method is dpo")
    with pytest.raises(FileNotFoundError, match=r"\(align.method is dpo\).*reward_model_with_dpo"):
        check_judge(none, params)


# --- pairs ------------------------------------------------------------------------------------


def judged(scores: list[list[float]]) -> dict:
    return {"judge": "test-judge", "scores": scores, "comparisons": [[] for _ in scores]}


def test_best_against_worst_when_the_margin_is_wide_enough(params):
    params["min_margin"] = {"reward_model": 0.5, "principles": 0.1}
    prompts = ["wide", "narrow", "same", "empty", "tied"]
    answers = [
        ["good", "bad", "middle"],
        ["this", "that", "other"],
        ["echo", "echo", "echo"],
        ["only one", "", "  "],
        ["left", "right", "left"],
    ]
    scores = [[2.0, -1.0, 0.5], [0.2, 0.1, 0.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0], [1, 1, 1]]

    pairs, report = make_preference_pairs(prompts, answers, judged(scores), params)

    assert pairs[["prompt", "chosen", "rejected"]].values.tolist() == [["wide", "good", "bad"]]
    row = pairs.iloc[0]
    assert (row["origin"], row["judge"]) == ("ai_feedback", "test-judge")
    assert (row["chosen_score"], row["rejected_score"]) == (2.0, -1.0)
    assert datetime.fromisoformat(row["created_at"]).tzinfo is not None
    assert report["pairs_written"] == 1
    assert report["skipped_prompts"] == {
        "too_few_answers": 1,
        "identical_answers": 1,
        "tied_or_below_min_margin": 2,
    }
    assert report["empty_answers"] == 2
    assert report["margin_of_written_pairs"]["mean"] == 3.0
    assert report["margin_of_judged_prompts"]["count"] == 3
    assert report["min_margin"] == 0.5


def test_no_pair_still_writes_a_table_with_the_pair_columns(params):
    pairs, report = make_preference_pairs(["q"], [["a", "b"]], judged([[1.0, 1.0]]), params)
    assert pairs.empty
    assert {"prompt", "chosen", "rejected", "origin"} <= set(pairs.columns)
    assert report["margin_of_written_pairs"]["count"] == 0


def test_feedback_prompts_are_grounded_as_the_models_were_trained(tmp_path):
    from llm_pipeline.retrieval import PassageIndex, RetrievalConfig

    retrieval = {**parameters("local")["retrieval"], "top_k": 1}
    passages = [
        {"id": "a", "source": "returns.md", "title": "Returns", "text": "Tents return in 30 days."},
        {"id": "b", "source": "lamps.md", "title": "Lamps", "text": "The head lamp costs $20."},
    ]
    index = tmp_path / "index"
    PassageIndex.build(passages, None, RetrievalConfig.model_validate(retrieval)).save(index)

    grounded = ground_prompts(["What does the head lamp cost?"], Folder(index), retrieval)
    plain = ground_prompts(["Hi"], Folder(index), {**retrieval, "enabled": False})

    assert grounded[0][0]["role"] == "system"
    assert "[1] The head lamp costs $20." in grounded[0][0]["content"]
    assert "Tents" not in grounded[0][0]["content"]
    assert grounded[0][1:] == [{"role": "user", "content": "What does the head lamp cost?"}]
    assert plain == [[{"role": "user", "content": "Hi"}]]
