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

``judge_with_controls`` first makes the judge prove itself: it scores control pairs made from the
validation set (an intact reference against a damaged copy, see ``controls.py``), and a metric
whose control accuracy (share of pairs with the intact text scored strictly higher) is below
``min_control_accuracy`` is reported as not computed, with its control figure. One judge serves
every model's answers; its controls run once.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_pipeline.evaluation import statistics
from llm_pipeline.evaluation.statistics import not_computed
from llm_pipeline.pipelines.evaluate.controls import ControlPair, control_pairs

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
# Requests -> (per-request score or None, error messages of the failed requests).
Scorer = Callable[[list["JudgeRequest"]], tuple[list[float | None], list[str]]]


class JudgeConfig(BaseModel):
    """``evaluate.judge``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "local", "likelihood", "openai"]
    # kind local: a causal LM folder with a chat template.
    # kind local: a model folder, or any model named as globals.yml's starting_model is (a
    # .gguf file, {package, file}); GGUF files are converted once into gguf_cache_dir.
    model: Path | dict[str, str] | None
    gguf_cache_dir: Path
    # kind openai: the API's base URL (".../v1"), the model it serves, the variable with its key.
    endpoint: str | None
    model_name: str | None
    api_key_env: str | None
    timeout_seconds: float = Field(gt=0)
    # Judge only the first N examples (None: all); the others count as not scored.
    max_examples: int | None = Field(ge=1)
    # kind local: prompts per forward pass.
    batch_size: int = Field(ge=1)
    # judge_with_controls: the share of control pairs a metric's judge must rank right (intact
    # answer strictly above its damaged copy) for the metric to count; judge_with_controls
    # refuses a configured judge with None.
    min_control_accuracy: float | None = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _complete(self) -> JudgeConfig:
        if self.kind in ("local", "likelihood") and self.model is None:
            raise ValueError(
                f"evaluate.judge.kind is {self.kind}: set judge.model to a model folder"
            )
        if self.kind == "openai" and not (self.endpoint and self.model_name):
            raise ValueError("evaluate.judge.kind is openai: set judge.endpoint and model_name")
        return self


@dataclass(frozen=True)
class JudgeRequest:
    """One score asked of the judge: a metric of an answer to a question (with the context
    it is grounded against, for groundedness)."""

    metric: str
    question: str
    answer: str
    context: str | None = None

    @classmethod
    def of(cls, metric: str, row: dict[str, Any], answer: str) -> JudgeRequest:
        context = row.get("context") if metric == "groundedness" else None
        return cls(metric, str(row.get("prompt", "")), answer, context)


def judge_prompt(request: JudgeRequest) -> Turns:
    """The chat turns that ask a rating judge for one score."""
    parts = [f"Question: {request.question}"]
    if request.metric == "groundedness":
        parts.append(f"Context: {request.context}")
    parts += [f"Answer: {request.answer}", f"Rate the answer's {request.metric} from 1 to 5."]
    system = (
        "You grade answers of an assistant. "
        + RUBRICS[request.metric]
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
    score = make_scorer(config)
    if isinstance(score, dict):
        return {metric: score for metric in JUDGED_METRICS}, no_failures
    return score_answers(score, rows, answers, config)


def make_scorer(config: JudgeConfig) -> Scorer | dict[str, Any]:
    """The configured judge as a ``Scorer`` (a local model is loaded here, once), or the
    not-computed figure that stands for every judged metric when there is none."""
    if config.kind == "none":
        return not_computed("no judge configured (evaluate.judge.kind: none)")
    if config.kind == "likelihood":
        return _likelihood_scorer(config)
    return _local_scorer(config) if config.kind == "local" else _endpoint_scorer(config)


def judge_model_folder(config: JudgeConfig) -> Path | None:
    """The folder of a local judge's model (a GGUF file or package converted once into the
    cache), None for an endpoint or no judge."""
    from llm_pipeline.datasets.starting_model import resolve_model

    if config.kind not in ("local", "likelihood"):
        return None
    if isinstance(config.model, Path) and config.model.is_dir():
        return config.model
    return resolve_model(config.model, config.gguf_cache_dir).path


def score_answers(
    score: Scorer,
    rows: list[dict[str, Any]],
    answers: list[str],
    config: JudgeConfig,
    contexts: list[str | None] | None = None,
    metrics: tuple[str, ...] = JUDGED_METRICS,
) -> tuple[dict[str, list[float | None] | dict[str, Any]], dict[str, int]]:
    """Per metric of ``metrics``, each answer's score by ``score`` (as ``judge_answers``) and
    the failures. ``contexts`` (one per row) replaces the rows' own contexts for groundedness."""
    if len(rows) != len(answers):
        raise ValueError(f"{len(answers)} answers for {len(rows)} examples.")
    if contexts is not None:
        if len(contexts) != len(rows):
            raise ValueError(f"{len(contexts)} contexts for {len(rows)} examples.")
        rows = [{**row, "context": context} for row, context in zip(rows, contexts, strict=True)]
    limit = len(rows) if config.max_examples is None else min(config.max_examples, len(rows))
    results: dict[str, list[float | None] | dict[str, Any]] = {}
    failures = dict.fromkeys(JUDGED_METRICS, 0)
    for metric in metrics:
        asked = [
            index for index in range(limit) if metric != "groundedness" or _has_context(rows[index])
        ]
        found, errors = score([JudgeRequest.of(metric, rows[i], answers[i]) for i in asked])
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


def judge_with_controls(
    rows: list[dict[str, Any]],
    answers: dict[str, list[str]],
    config: JudgeConfig,
    *,
    seed: int,
    resamples: int,
    contexts: list[str | None] | None = None,
    scorer: Scorer | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model (a key of ``answers``) and metric: ``{"values": [...], "control": {...}}``
    when the judge passed that metric's control, else ``{"computed": False, "reason": ...,
    "control": {...}}``. The judge (``scorer``, or the one ``config`` describes) is made once
    and its controls, built from ``rows`` (their references and own contexts), run once.
    ``contexts`` (one per row, e.g. retrieved passages) replaces the rows' contexts when the
    answers' groundedness is judged; ``seed`` seeds the controls and their bootstrap intervals."""
    for name, texts in answers.items():
        if len(texts) != len(rows):
            raise ValueError(f"{len(texts)} answers of {name} for {len(rows)} examples.")
    score = make_scorer(config) if scorer is None else scorer
    if isinstance(score, dict):
        return {name: {metric: dict(score) for metric in JUDGED_METRICS} for name in answers}
    if config.min_control_accuracy is None:
        raise ValueError(
            "evaluate.judge.min_control_accuracy is not set: say which share of its control "
            "pairs the judge must rank right for a judged metric to count (e.g. 0.8)."
        )
    controls = judge_controls(score, rows, config, seed=seed, resamples=resamples)
    # A metric whose control failed is never scored: its answers' scores would not count.
    passed = tuple(m for m in JUDGED_METRICS if controls[m].get("passed") is True)
    judged: dict[str, dict[str, dict[str, Any]]] = {}
    for name, texts in answers.items():
        found, _ = score_answers(score, rows, texts, config, contexts, passed)
        judged[name] = {
            metric: _entry(
                metric, found.get(metric, []), controls[metric], config.min_control_accuracy
            )
            for metric in JUDGED_METRICS
        }
    return judged


def judge_controls(
    score: Scorer, rows: list[dict[str, Any]], config: JudgeConfig, *, seed: int, resamples: int
) -> dict[str, dict[str, Any]]:
    """Per metric, the judge's control accuracy on the control pairs made from the first
    ``max_examples`` rows: ``{"value", "low", "high", "n", "passed", "threshold"}`` (a pair the
    judge failed to score counts as ranked wrong, a tie too), or not computed (no pair)."""
    limit = len(rows) if config.max_examples is None else min(config.max_examples, len(rows))
    threshold = config.min_control_accuracy
    figures: dict[str, dict[str, Any]] = {}
    for metric, pairs in control_pairs(rows[:limit], seed).items():
        if not pairs:
            figures[metric] = not_computed(
                f"no {metric} control pair could be made from the validation examples"
                + (" (none has a context)" if metric == "groundedness" else "")
            )
            continue
        requests = [
            JudgeRequest.of(metric, _control_row(rows[pair.index], pair), text)
            for pair in pairs
            for text in (pair.intact, pair.damaged)
        ]
        found, errors = score(requests)
        ranked = [
            float(intact is not None and damaged is not None and intact > damaged)
            for intact, damaged in zip(found[0::2], found[1::2], strict=True)
        ]
        figure = statistics.interval(statistics.Sample.of(ranked), resamples, seed)
        figure["passed"] = threshold is not None and figure["value"] >= threshold
        figure["threshold"] = threshold
        if errors:
            figure["failed_scores"] = len(errors)
            figure["first_error"] = errors[0]
        logger.info(
            "Judge control %s: %.3f [%.3f, %.3f] of %d pairs ranked right%s",
            metric,
            figure["value"],
            figure["low"],
            figure["high"],
            figure["n"],
            f" ({len(errors)} scores failed)" if errors else "",
        )
        figures[metric] = figure
    return figures


def _control_row(row: dict[str, Any], pair: ControlPair) -> dict[str, Any]:
    """The row a control pair is judged under: its question and the context it was made
    against (groundedness), so the controls never see a caller's replacement contexts."""
    return {**row, "context": pair.context}


def _entry(
    metric: str,
    found: list[float | None] | dict[str, Any],
    control: dict[str, Any],
    threshold: float,
) -> dict[str, Any]:
    """A model's metric as ``add_answer_scores`` stores it, with the judge's control figure."""
    if isinstance(found, dict):
        return {**found, "control": control}
    if control.get("computed") is False:
        reason = f"the judge's {metric} control could not be run: {control['reason']}"
        return {**not_computed(reason), "control": control}
    if not control["passed"]:
        reason = (
            f"judge failed its control: {metric} control accuracy {control['value']:.2f} "
            f"[{control['low']:.2f}, {control['high']:.2f}] < {threshold:g} "
            f"({control['n']} pairs)"
        )
        if control.get("failed_scores"):
            reason += f"; {control['failed_scores']} scores failed, first: {control['first_error']}"
        return {**not_computed(reason), "control": control}
    return {"values": found, "control": control}


def _has_context(row: dict[str, Any]) -> bool:
    context = row.get("context")
    return isinstance(context, str) and bool(context.strip())


def _local_scorer(config: JudgeConfig) -> Scorer | dict[str, Any]:
    """Prompts -> expected score under the model's next-token distribution over "1".."5", or a
    not-computed figure when its tokenizer cannot be read that way."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS

    config = config.model_copy(update={"model": judge_model_folder(config)})
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
    model = MODELS.causal_lm(config.model)
    digits = torch.tensor(single, device=model.device)
    values = torch.arange(1, 6, dtype=torch.float32, device=model.device)

    def score(requests: list[JudgeRequest]) -> tuple[list[float | None], list[str]]:
        found: list[float | None] = []
        for start in range(0, len(requests), config.batch_size):
            texts = [
                tokenizer.apply_chat_template(
                    judge_prompt(request), tokenize=False, add_generation_prompt=True
                )
                for request in requests[start : start + config.batch_size]
            ]
            batch = tokenizer(
                texts, add_special_tokens=False, padding=True, return_tensors="pt"
            ).to(model.device)
            # Positions count from each prompt's first real token, so a score does not depend on
            # how much padding its batch neighbours add.
            positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(**batch, position_ids=positions).logits[:, -1, :].float()
            probabilities = torch.softmax(logits[:, digits], dim=-1)
            found.extend((probabilities * values).sum(dim=-1).tolist())
        return found, []

    return score


# Answer tokens scored at most (a longer answer is judged on its beginning).
MAX_ANSWER_TOKENS = 256


def _likelihood_scorer(config: JudgeConfig) -> Scorer | dict[str, Any]:
    """Requests -> the judge model's mean log-probability per answer token (nats; higher is
    better), conditioned as the metric asks (as GPTScore, Fu et al. 2023):

    - fluency: the answer on its own, ``log p(answer)``;
    - coherence: the answer as the reply to the question, ``log p(answer | question)``;
    - relevance: how much the question explains the answer,
      ``log p(answer | question) - log p(answer)``;
    - groundedness: how much the context explains it beyond the question,
      ``log p(answer | context, question) - log p(answer | question)``.

    The answer is tokenized on its own and appended to the prompt's tokens, so every term of a
    difference scores the very same tokens. Each distinct (prompt, answer) is computed once.
    """
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.likelihood import IGNORED, summed_nlls
    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS
    from llm_pipeline.training.jobs import inference_precision

    folder = judge_model_folder(config)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not tokenizer.chat_template:
        return not_computed(f"the judge's tokenizer ({folder}) has no chat template")
    model = MODELS.causal_lm(folder)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start = tokenizer.bos_token or tokenizer.eos_token or ""
    limit = getattr(model.config, "max_position_embeddings", 2048)
    cache: dict[tuple[str, str], float | None] = {}

    def prefix(turns: Turns | None) -> str:
        if turns is None:
            return start
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def fill(pairs: list[tuple[str, str]]) -> None:
        """Mean answer-token log-probabilities of (prompt text, answer) pairs, into cache."""
        todo = sorted({pair for pair in pairs if pair not in cache})
        sequences = []
        for text, answer in todo:
            ids = tokenizer(answer, add_special_tokens=False)["input_ids"][:MAX_ANSWER_TOKENS]
            head = tokenizer(text, add_special_tokens=False)["input_ids"]
            head = head[-max(1, limit - len(ids)) :] if head else [pad]
            sequences.append((head + ids, [IGNORED] * len(head) + ids))
        with inference_precision():
            nlls, counts = summed_nlls(model, sequences, pad, config.batch_size)
        for pair, nll, count in zip(todo, nlls, counts, strict=True):
            cache[pair] = -nll / count if count else None

    def terms(request: JudgeRequest) -> list[tuple[float, tuple[str, str]]]:
        """(weight, (prompt text, answer)) terms whose weighted sum is the request's score."""
        asked = [{"role": "user", "content": request.question}]
        alone = (prefix(None), request.answer)
        replied = (prefix(asked), request.answer)
        if request.metric == "fluency":
            return [(1.0, alone)]
        if request.metric == "coherence":
            return [(1.0, replied)]
        if request.metric == "relevance":
            return [(1.0, replied), (-1.0, alone)]
        given = [{"role": "system", "content": f"Context: {request.context}"}, *asked]
        return [(1.0, (prefix(given), request.answer)), (-1.0, replied)]

    def score(requests: list[JudgeRequest]) -> tuple[list[float | None], list[str]]:
        planned = [terms(request) for request in requests]
        fill([pair for plan in planned for _, pair in plan])
        found: list[float | None] = []
        errors: list[str] = []
        for plan in planned:
            values = [cache[pair] for _, pair in plan]
            if any(value is None for value in values):
                found.append(None)
                errors.append("an empty answer has no tokens to score")
                continue
            found.append(
                sum(weight * value for (weight, _), value in zip(plan, values, strict=True))
            )
        return found, errors

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

    def score(requests: list[JudgeRequest]) -> tuple[list[float | None], list[str]]:
        found: list[float | None] = []
        errors: list[str] = []
        for request in requests:
            try:
                found.append(ask(judge_prompt(request)))
            except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
                # URLError and timeouts are OSErrors; a malformed body is one of the others.
                found.append(None)
                errors.append(f"{url}: {error}")
        return found, errors

    return score


# config.json fields that fix a model's architecture and size.
_SHAPE_FIELDS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)
_NAME_HINTS = ("base_model", "base_model_name_or_path", "_name_or_path", "_model_name_or_path")


def shares_starting_model(first: Path | str, second: Path | str) -> bool:
    """Whether two model folders (e.g. the judge and a judged model) likely grew from the same
    starting model, so that one judging the other may favour its own kind of answer.

    Each folder's lineage is followed back through the starting model its training recorded
    (``model_dir`` in ``llm_pipeline_config.yaml``) or an adapter's base model. True when the
    lineages meet in one folder, or when their oldest folders have the same architecture and size
    (``config.json``) and no name hint (``base_model``, ``_name_or_path``) tells them apart. A
    heuristic for a warning, not proof: two models pretrained alike from scratch also match.
    """
    first_line, second_line = _lineage(Path(first)), _lineage(Path(second))
    if {str(folder) for folder in first_line} & {str(folder) for folder in second_line}:
        return True
    first_root = _read_model_config(first_line[-1])
    second_root = _read_model_config(second_line[-1])
    shape = [first_root.get(field) for field in _SHAPE_FIELDS]
    if not first_root or shape != [second_root.get(field) for field in _SHAPE_FIELDS]:
        return False
    names = [_name_hint(first_root), _name_hint(second_root)]
    return None in names or names[0] == names[1]


def _lineage(folder: Path) -> list[Path]:
    """``folder`` and the starting models it was made from, oldest last (resolved paths)."""
    import yaml

    from llm_pipeline.training.jobs import RUN_CONFIG_FILE
    from llm_pipeline.training.models import ADAPTER_CONFIG_FILE

    line = [folder.expanduser().resolve()]
    while len(line) < 20:
        current, start = line[-1], None
        run_config = current / RUN_CONFIG_FILE
        if run_config.is_file():
            start = (yaml.safe_load(run_config.read_text(encoding="utf-8")) or {}).get("model_dir")
        if not start and (current / ADAPTER_CONFIG_FILE).is_file():
            adapter = json.loads((current / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
            start = adapter.get("base_model_name_or_path")
        if not start or not Path(start).expanduser().is_dir():
            break
        start_path = Path(start).expanduser().resolve()
        if start_path in line:
            break
        line.append(start_path)
    return line


def _read_model_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _name_hint(config: dict[str, Any]) -> str | None:
    """The name a config.json gives its origin, when it gives one that is not a local path."""
    for key in _NAME_HINTS:
        value = config.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return value
    return None
