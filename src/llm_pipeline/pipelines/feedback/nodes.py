"""Feedback: new preference pairs from the fine-tuned model's own answers, judged by AI.

For prompts from the validated training data (never the held-out splits), the fine-tuned model
samples several answers; a judge scores them (``judges.py``); the best and the
worst answer of a prompt become a pair when their scores differ by ``min_margin``. The pairs are
written under data/01_raw/preferences with ``origin: ai_feedback``, so the next ``kedro run``
ingests, validates and trains on them like any other pair. The same answers also fill the human
review queue (``review_queue.py``, served by ``python -m llm_pipeline.cli.review``).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.datasets.model_folder import Folder, ModelFolder
from llm_pipeline.pipelines.feedback.judges import PairJudgeConfig, model_name
from llm_pipeline.pipelines.feedback.sampling import GenerationConfig

logger = logging.getLogger(__name__)

ORIGIN = "ai_feedback"
PAIR_COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "origin",
    "judge",
    "chosen_score",
    "rejected_score",
    "created_at",
]
REVIEW_COLUMNS = ["id", "prompt", "answer_a", "answer_b", "model"]


class PromptsConfig(BaseModel):
    """Where the prompts come from: preference prompts, the first user turn of conversations."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Literal["preferences", "conversations"]] = Field(min_length=1)
    count: int = Field(ge=1)


class MarginConfig(BaseModel):
    """The smallest best-minus-worst score gap that makes a pair, in each judge's units."""

    model_config = ConfigDict(extra="forbid")

    reward_model: float = Field(ge=0)
    principles: float = Field(ge=0, le=1)


class FeedbackConfig(BaseModel):
    """``feedback`` in parameters_feedback.yml."""

    model_config = ConfigDict(extra="forbid")

    prompts: PromptsConfig
    answers_per_prompt: int = Field(ge=2)
    generation: GenerationConfig
    judge: PairJudgeConfig
    principles: list[str]
    min_margin: MarginConfig

    def margin(self) -> float:
        return (
            self.min_margin.principles
            if self.judge.uses_principles
            else self.min_margin.reward_model
        )


def select_prompts(
    preferences_train: pd.DataFrame, conversations_train: pd.DataFrame, params: dict[str, Any]
) -> list[str]:
    """Distinct prompts from the training splits, at most ``prompts.count``, picked by the seed.

    A conversation gives its first user turn: a later turn ("And the boots?") needs the turns
    before it to make sense.
    """
    config = FeedbackConfig.model_validate(params)
    found: list[str] = []
    if "preferences" in config.prompts.sources:
        found += [p for p in preferences_train.get("prompt", []) if isinstance(p, str)]
    if "conversations" in config.prompts.sources:
        found += [_first_user_turn(turns) for turns in conversations_train.get("messages", [])]
    prompts = list(dict.fromkeys(p.strip() for p in found if isinstance(p, str) and p.strip()))
    if not prompts:
        raise ValueError(
            f"No prompt found in the training {' or '.join(config.prompts.sources)} "
            "(feedback.prompts.sources): run the default pipeline first, or add a source."
        )
    if len(prompts) > config.prompts.count:
        rng = np.random.default_rng(config.generation.seed)
        picked = sorted(rng.choice(len(prompts), size=config.prompts.count, replace=False))
        prompts = [prompts[i] for i in picked]
    logger.info("AI feedback on %d prompts from %s", len(prompts), config.prompts.sources)
    return prompts


def _first_user_turn(turns: Any) -> str | None:
    if not isinstance(turns, (list, np.ndarray)):
        return None
    return next((t["content"] for t in turns if t.get("role") == "user"), None)


def ground_prompts(
    prompts: list[str], passage_index: Folder, retrieval_params: dict[str, Any]
) -> list[list[dict[str, str]]]:
    """Each prompt as chat turns with the passages retrieved for it in a system turn, as every
    stage grounds its prompts (unchanged turns when retrieval is off)."""
    from llm_pipeline.pipelines.feedback.sampling import chat_turns
    from llm_pipeline.retrieval.conversations import grounding

    return grounding(passage_index.path, retrieval_params, training=True)(
        [chat_turns(p) for p in prompts]
    )


def sample_candidate_answers(
    prompts: list[str | list[dict[str, str]]], sft_model: ModelFolder, params: dict[str, Any]
) -> list[list[str]]:
    """``answers_per_prompt`` sampled answers to each prompt from the fine-tuned model."""
    from llm_pipeline.pipelines.feedback.sampling import sample_answers

    config = FeedbackConfig.model_validate(params)
    answers = sample_answers(
        sft_model.path, prompts, config.answers_per_prompt, config.generation.model_dump()
    )
    distinct = sum(len(set(a)) for a in answers)
    logger.info(
        "Sampled %d answers (%d distinct) to %d prompts from %s",
        sum(map(len, answers)),
        distinct,
        len(prompts),
        sft_model.path,
    )
    return answers


def check_judge(reward_model: ModelFolder, params: dict[str, Any]) -> ModelFolder:
    """The judge's model folder, checked before any answer is sampled (sampling takes minutes):
    the local causal LM folder of a principles judge, or the align stage's reward model."""
    config = FeedbackConfig.model_validate(params)
    if config.judge.uses_principles:
        judge_dir = Path(config.judge.model)
        if (
            not (judge_dir / "config.json").exists()
            and not (judge_dir / "adapter_config.json").exists()
        ):
            raise FileNotFoundError(
                f"feedback.judge.model is '{config.judge.model}', which is not a local model "
                "folder (no config.json): give the path of a causal LM folder, or 'reward_model' "
                "to judge with the align stage's reward model."
            )
        return ModelFolder(judge_dir)
    if reward_model.not_trained:
        raise FileNotFoundError(
            f"feedback.judge.model is 'reward_model', and {reward_model.path} holds no reward "
            f"model ({reward_model.not_trained}). Train one first: kedro run --nodes "
            "align.train_reward_model --params align.reward_model_with_dpo=true; or set "
            "feedback.judge.model to a local causal LM folder to judge by the principles."
        )
    return reward_model


def judge_answers(
    prompts: list[str | list[dict[str, str]]],
    answers: list[list[str]],
    judge: ModelFolder,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Every answer's score by the configured judge (``check_judge``): the reward model, or a
    judge model that applies the written principles (``llm_pipeline.pipelines.feedback.judges``)."""
    from llm_pipeline.pipelines.feedback.judges import (
        judge_with_principles,
        judge_with_reward_model,
    )

    config = FeedbackConfig.model_validate(params)
    if config.judge.uses_principles:
        judgement = judge_with_principles(
            judge.path, config.principles, prompts, answers, config.judge.batch_size
        )
    else:
        judgement = judge_with_reward_model(judge.path, prompts, answers, config.judge.batch_size)
    logger.info("Judged %d answers with %s", sum(map(len, answers)), judgement.judge)
    return dataclasses.asdict(judgement)


def make_preference_pairs(
    prompts: list[str],
    answers: list[list[str]],
    judgement: dict[str, Any],
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The best against the worst answer of each prompt, when their scores differ by at least
    ``min_margin``; and a report of what was written, what was skipped and why."""
    config = FeedbackConfig.model_validate(params)
    min_margin = config.margin()
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows, margins = [], []
    skipped = {"too_few_answers": 0, "identical_answers": 0, "tied_or_below_min_margin": 0}
    empty_answers = 0
    for prompt, prompt_answers, scores in zip(prompts, answers, judgement["scores"], strict=True):
        answered = [(a, s) for a, s in zip(prompt_answers, scores, strict=True) if a.strip()]
        empty_answers += len(prompt_answers) - len(answered)
        candidates = dict(answered)  # identical answers have the same score
        if len(candidates) < 2:
            skipped["too_few_answers" if len(answered) < 2 else "identical_answers"] += 1
            continue
        best = max(candidates.items(), key=lambda found: found[1])
        worst = min(
            ((a, s) for a, s in candidates.items() if a != best[0]), key=lambda found: found[1]
        )
        margin = best[1] - worst[1]
        margins.append(margin)
        if margin <= 0 or margin < min_margin:
            skipped["tied_or_below_min_margin"] += 1
            continue
        rows.append(
            {
                "prompt": prompt,
                "chosen": best[0],
                "rejected": worst[0],
                "origin": ORIGIN,
                "judge": judgement["judge"],
                "chosen_score": float(best[1]),
                "rejected_score": float(worst[1]),
                "created_at": created_at,
            }
        )
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    report = {
        "created_at": created_at,
        "judge": judgement["judge"],
        "prompts": len(prompts),
        "answers_per_prompt": config.answers_per_prompt,
        "empty_answers": empty_answers,
        "pairs_written": len(pairs),
        "skipped_prompts": skipped,
        "min_margin": min_margin,
        "margin_of_written_pairs": _stats(list(pairs["chosen_score"] - pairs["rejected_score"])),
        "margin_of_judged_prompts": _stats(margins),
        **_comparison_stats(judgement["comparisons"]),
    }
    logger.info(
        "Wrote %d AI feedback pairs from %d prompts; skipped %s", len(pairs), len(prompts), skipped
    )
    if len(pairs) == 0:
        logger.warning(
            "No AI feedback pair passed: the judge's margins (%s) are all below "
            "feedback.min_margin %s, or the answers were identical.",
            report["margin_of_judged_prompts"],
            min_margin,
        )
    return pairs, report


def build_review_queue(
    prompts: list[str], answers: list[list[str]], sft_model: ModelFolder, params: dict[str, Any]
) -> pd.DataFrame:
    """Two different sampled answers per prompt, in a random order, for people to judge on the
    review page (``python -m llm_pipeline.cli.review serve``)."""
    from llm_pipeline.pipelines.feedback.review_queue import review_pairs

    config = FeedbackConfig.model_validate(params)
    rows = review_pairs(prompts, answers, model_name(sft_model.path), config.generation.seed)
    logger.info("%d answer pairs queued for human review", len(rows))
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=REVIEW_COLUMNS)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "min": None, "mean": None, "median": None, "max": None}
    return {
        "count": len(values),
        "min": float(min(values)),
        "mean": float(statistics.fmean(values)),
        "median": float(statistics.median(values)),
        "max": float(max(values)),
    }


def _comparison_stats(comparisons: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """For a principles judge: how often both orders agreed, and how much it favoured "A"."""
    found = [c for per_prompt in comparisons for c in per_prompt]
    if not found:
        return {}
    return {
        "comparisons": len(found),
        "comparisons_consistent_in_both_orders": sum(c["consistent"] for c in found) / len(found),
        "mean_position_bias": statistics.fmean(c["position_bias"] for c in found),
    }
