"""Judged metrics on the usual 1-5 scale: groundedness, relevance, coherence, fluency.

The judge is configured (``evaluate.judge``), never assumed:
- ``kind: none`` (the default): each metric is reported as not computed, with the reason;
- ``kind: local``: a causal language model folder reads the rubric and the answer; the score is
  the expectation of its next-token probabilities over the digits 1-5 (as in G-Eval), so it is
  deterministic and not rounded to a whole point;
- ``kind: openai``: any OpenAI-compatible chat completions endpoint (a hosted model, or vLLM,
  llama.cpp or Ollama serving one locally) answers with a digit at temperature 0.

Plain HTTP rather than MLflow's GenAI judges: ``mlflow.metrics.genai`` reaches an arbitrary
endpoint only through process-wide ``OPENAI_API_BASE``/``OPENAI_API_KEY`` variables and its own
"score + justification" reply format, and ``mlflow.genai`` judges need LiteLLM, which is not
installed. A row the judge could not score counts as missing and is counted as a failure; a
metric no row could be scored on is not computed, with the first error as its reason.
Groundedness applies only to rows with a context.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_pipeline.evaluation.statistics import not_computed

logger = logging.getLogger(__name__)

JUDGED_METRICS = ("groundedness", "relevance", "coherence", "fluency")
SCALE = ("1", "2", "3", "4", "5")
RUBRICS = {
    "groundedness": "Groundedness: is every claim in the answer supported by the context? "
    "1 = contradicts it or is made up, 3 = partly supported, 5 = fully supported.",
    "relevance": "Relevance: does the answer address the question that was asked? "
    "1 = unrelated, 3 = partly addresses it, 5 = answers exactly what was asked.",
    "coherence": "Coherence: is the answer logically consistent and well organised? "
    "1 = incoherent, 3 = partly coherent, 5 = clear and consistent throughout.",
    "fluency": "Fluency: is the answer grammatical, natural language? "
    "1 = broken, 3 = understandable with errors, 5 = fluent and natural.",
}
# A digit 1-5 standing alone, so "10" or "2024" in a chatty reply is not read as a score.
_SCORE_IN_REPLY = re.compile(r"(?<!\d)[1-5](?!\d)")

Turns = list[dict[str, str]]
# Prompts -> (per-prompt score or None, error messages of the failed prompts).
Scorer = Callable[[list[Turns]], tuple[list[float | None], list[str]]]


class JudgeConfig(BaseModel):
    """``evaluate.judge``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "local", "openai"] = "none"
    # kind local: a causal LM folder with a chat template.
    model: Path | None = None
    # kind openai: the API's base URL (".../v1"), the model it serves, the variable with its key.
    endpoint: str | None = None
    model_name: str | None = None
    api_key_env: str | None = None
    timeout_seconds: float = Field(60.0, gt=0)
    # Judge only the first N examples (None: all); the others count as not scored.
    max_examples: int | None = Field(None, ge=1)
    # kind local: prompts per forward pass.
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> JudgeConfig:
        if self.kind == "local" and self.model is None:
            raise ValueError("evaluate.judge.kind is local: set judge.model to a model folder")
        if self.kind == "openai" and not (self.endpoint and self.model_name):
            raise ValueError("evaluate.judge.kind is openai: set judge.endpoint and model_name")
        return self


def judge_prompt(metric: str, row: dict[str, Any], answer: str) -> Turns:
    """The chat turns that ask for one score."""
    parts = [f"Question: {row.get('prompt', '')}"]
    if metric == "groundedness":
        parts.append(f"Context: {row.get('context')}")
    parts += [f"Answer: {answer}", f"Rate the answer's {metric} from 1 to 5."]
    system = (
        "You grade answers of an assistant. "
        + RUBRICS[metric]
        + " Reply with one digit from 1 to 5 and nothing else."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def judge_answers(
    rows: list[dict[str, Any]], answers: list[str], config: JudgeConfig
) -> dict[str, list[float | None] | dict[str, Any]]:
    """Per metric, each example's 1-5 score (None where it does not apply or was not scored),
    or ``{"computed": False, "reason": ...}``."""
    return judge_answers_counting_failures(rows, answers, config)[0]


def judge_answers_counting_failures(
    rows: list[dict[str, Any]], answers: list[str], config: JudgeConfig
) -> tuple[dict[str, list[float | None] | dict[str, Any]], dict[str, int]]:
    """``judge_answers`` and, per metric, how many of the examples it asked about the judge
    failed to score (no digit in the reply, an HTTP error, a timeout)."""
    if len(rows) != len(answers):
        raise ValueError(f"{len(answers)} answers for {len(rows)} examples.")
    no_failures = dict.fromkeys(JUDGED_METRICS, 0)
    if config.kind == "none":
        reason = "no judge configured (evaluate.judge.kind: none)"
        return {metric: not_computed(reason) for metric in JUDGED_METRICS}, no_failures
    score = _local_scorer(config) if config.kind == "local" else _endpoint_scorer(config)
    if isinstance(score, dict):
        return {metric: score for metric in JUDGED_METRICS}, no_failures
    limit = len(rows) if config.max_examples is None else min(config.max_examples, len(rows))
    results: dict[str, list[float | None] | dict[str, Any]] = {}
    failures = dict(no_failures)
    for metric in JUDGED_METRICS:
        asked = [
            index for index in range(limit) if metric != "groundedness" or _has_context(rows[index])
        ]
        found, errors = score([judge_prompt(metric, rows[i], answers[i]) for i in asked])
        failures[metric] = len(errors)
        if errors:
            logger.warning(
                "Judge %s: %d of %d %s scores failed (first: %s)",
                config.kind,
                len(errors),
                len(asked),
                metric,
                errors[0],
            )
        if asked and len(errors) == len(asked):
            results[metric] = not_computed(f"the judge failed: {errors[0]}")
            continue
        scores: list[float | None] = [None] * len(rows)
        for index, value in zip(asked, found, strict=True):
            scores[index] = value
        results[metric] = scores
    return results, failures


def _has_context(row: dict[str, Any]) -> bool:
    context = row.get("context")
    return isinstance(context, str) and bool(context.strip())


def _local_scorer(config: JudgeConfig) -> Scorer | dict[str, Any]:
    """Prompts -> expected score under the model's next-token distribution over "1".."5", or a
    not-computed figure when its tokenizer cannot be read that way."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    # A copy: padding on the left must not leak into a tokenizer object cached elsewhere.
    tokenizer = copy.copy(AutoTokenizer.from_pretrained(str(config.model)))
    if not tokenizer.chat_template:
        return not_computed(f"the judge's tokenizer ({config.model}) has no chat template")
    digit_ids = [tokenizer.encode(digit, add_special_tokens=False) for digit in SCALE]
    single = [ids[0] for ids in digit_ids if len(ids) == 1]
    if (
        len(single) != len(SCALE)
        or len(set(single)) != len(SCALE)
        or tokenizer.unk_token_id in single
    ):
        return not_computed(
            f"the judge's tokenizer ({config.model}) has no single token per digit 1-5"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = load_causal_lm(config.model).eval()
    digits = torch.tensor(single)
    values = torch.arange(1, 6, dtype=torch.float32)

    def score(prompts: list[Turns]) -> tuple[list[float | None], list[str]]:
        found: list[float | None] = []
        for start in range(0, len(prompts), config.batch_size):
            texts = [
                tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
                for turns in prompts[start : start + config.batch_size]
            ]
            batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
            # Positions count from each prompt's first real token, so a score does not depend on
            # how much padding its batch neighbours add.
            positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(**batch, position_ids=positions).logits[:, -1, :].float()
            probabilities = torch.softmax(logits[:, digits], dim=-1)
            found.extend((probabilities * values).sum(dim=-1).tolist())
        return found, []

    return score


def _endpoint_scorer(config: JudgeConfig) -> Scorer | dict[str, Any]:
    """Prompts -> the digit each reply of the OpenAI-compatible endpoint gives (temperature 0)."""
    headers = {"Content-Type": "application/json"}
    if config.api_key_env:
        key = os.environ.get(config.api_key_env)
        if not key:
            return not_computed(f"the judge's key variable {config.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    url = f"{str(config.endpoint).rstrip('/')}/chat/completions"

    def ask(turns: Turns) -> float:
        body = {"model": config.model_name, "messages": turns, "temperature": 0, "max_tokens": 5}
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=config.timeout_seconds) as response:
            reply = json.load(response)["choices"][0]["message"]["content"] or ""
        digit = _SCORE_IN_REPLY.search(str(reply))
        if digit is None:
            raise ValueError(f"no score 1-5 in the judge's reply {str(reply)[:80]!r}")
        return float(digit.group())

    def score(prompts: list[Turns]) -> tuple[list[float | None], list[str]]:
        found: list[float | None] = []
        errors: list[str] = []
        for turns in prompts:
            try:
                found.append(ask(turns))
            except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
                # URLError and timeouts are OSErrors; a malformed body is one of the others.
                found.append(None)
                errors.append(f"{url}: {error}")
        return found, errors

    return score
