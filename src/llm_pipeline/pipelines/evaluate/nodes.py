"""Evaluate: perplexity of the reference answers and similarity of generated answers, per model,
and the evidence that alignment worked.

All models are scored on the same held-out validation set with the same prompts, so their
figures compare directly. Runs in the Kedro process: inference on a validation set is small
next to training.

The alignment evidence compares the fine-tuned (sft) and the aligned model on the held-out
preference pairs, each figure computed the same way for both:
- ``preference_accuracy``: the fraction of pairs in which the model gives the chosen answer a
  higher log-likelihood than the rejected one (the sum of the answer tokens' log-probabilities
  after the chat-formatted prompt, as TRL's DPO counts them);
- ``implicit_reward_accuracy``: the fraction of pairs in which the implicit reward
  ``beta * (log pi_aligned(y|x) - log pi_sft(y|x))`` of the chosen answer is above the rejected
  one's (DPO's reward; under RLHF the same KL-regularised form), with its mean margin;
- ``reward_model_score``: the reward model's mean score of each model's greedy answers to the
  validation set's prompts (asked as the other metrics ask them), when the align stage trained
  one (under DPO only with ``align.reward_model_with_dpo``); else its figures are not computed,
  with the reason.

The gains (``preference_accuracy_gain``, ``reward_model_score_gain``) are paired bootstrap
comparisons of the aligned model against the fine-tuned one over the same pairs or prompts, and
the implicit reward accuracy has its interval: with a few dozen held-out pairs, one pair more
or less is no evidence, and the figures say so.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.datasets.model_folder import Folder, ModelFolder
from llm_pipeline.evaluation import statistics
from llm_pipeline.pipelines.evaluate.canary import CanaryConfig
from llm_pipeline.pipelines.evaluate.judge import JudgeConfig
from llm_pipeline.pipelines.evaluate.likelihood import IGNORED, labelled_nlls, summed_nlls
from llm_pipeline.training.jobs import batches_by_length, inference_precision

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: the longest common word subsequence against both lengths."""
    a, b = words(candidate), words(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[-1]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def prompt_messages(row: Any, include_context: bool) -> list[dict[str, str]]:
    """The chat turns a model answers; the context becomes a system turn when asked for."""
    messages = list(row["messages"]) if isinstance(row["messages"], list) else []
    messages = messages or [{"role": "user", "content": row["prompt"]}]
    context = row.get("context")
    if include_context and isinstance(context, str) and context:
        messages = [
            {"role": "system", "content": f"Answer from this context:\n{context}"},
            *messages,
        ]
    return messages


def reference_nlls(
    model: Any, tokenizer: Any, prompts: list[str], references: list[str], batch_size: int
) -> tuple[list[float], list[int]]:
    """Per example, the summed negative log-likelihood of the reference tokens given the
    prompt, and their count."""
    sequences = []
    for prompt, reference in zip(prompts, references, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]
        sequences.append((full_ids, [IGNORED] * len(prompt_ids) + full_ids[len(prompt_ids) :]))
    return summed_nlls(model, sequences, tokenizer.pad_token_id, batch_size)


def reference_perplexity(
    model: Any, tokenizer: Any, prompts: list[str], references: list[str], batch_size: int
) -> float:
    """exp of the mean negative log-likelihood of the reference tokens given their prompts."""
    nlls, counts = reference_nlls(model, tokenizer, prompts, references, batch_size)
    if sum(counts) == 0:
        raise ValueError("No reference tokens to score: the validation set is empty.")
    return math.exp(sum(nlls) / sum(counts))


def generate_answers(model: Any, tokenizer: Any, prompts: list[str], params: dict) -> list[str]:
    """Greedy answers to ``prompts``, in the order given, generated in batches of prompts of
    similar length (less padding) padded on the left."""
    import torch
    from tqdm import tqdm

    if not prompts:
        return []
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    answers = [""] * len(prompts)
    batches = prompt_batches(model, tokenizer, prompts, params["batch_size"])
    for rows, batch in tqdm(batches, desc="generate answers", unit=" batches", disable=None):
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=params["max_new_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        for index, text in zip(
            rows, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True
        ):
            answers[index] = text.strip()
    return answers


def prompt_batches(model: Any, tokenizer: Any, prompts: list[str], batch_size: int) -> list:
    """(rows, encoded batch on the model's device) for ``prompts`` in batches of similar length
    (little padding), padded as ``tokenizer`` pads: on the left for generation, which continues
    from each prompt's last token."""
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    return [
        (
            rows,
            tokenizer(
                [prompts[index] for index in rows],
                add_special_tokens=False,
                return_tensors="pt",
                padding=True,
            ).to(model.device),
        )
        for rows in batches_by_length(lengths, batch_size)
    ]


def answers_and_reference_nlls(
    model: Any, tokenizer: Any, prompts: list[str], references: list[str], params: dict
) -> tuple[list[str], list[float], list[int]]:
    """``generate_answers`` and ``reference_nlls`` in one pass over each batch of prompts: the
    prompt's keys and values are computed once and serve both the scoring of the reference
    after it and the greedy answer. Scoring them apart ran each prompt through the model twice,
    and a grounded prompt (the passages) is most of every sequence. Batches, left padding,
    positions and the reference's tokens are those of the two; decoding is greedy, as
    ``model.generate`` decodes (the same forward shapes, so the same answers)."""
    import torch
    from transformers import DynamicCache

    if not prompts:
        return [], [], []
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    continued = tokenizer(
        [prompt + reference for prompt, reference in zip(prompts, references, strict=True)],
        add_special_tokens=False,
    )["input_ids"]
    reference_ids = [full[len(ids) :] for ids, full in zip(prompt_ids, continued, strict=True)]
    answers, nlls, counts = [""] * len(prompts), [0.0] * len(prompts), [0] * len(prompts)
    for rows, batch in prompt_batches(model, tokenizer, prompts, params["batch_size"]):
        cache = DynamicCache(config=model.config)
        mask = batch["attention_mask"]
        with torch.no_grad():
            last = model(
                input_ids=batch["input_ids"],
                attention_mask=mask,
                position_ids=_positions(mask),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            found = [reference_ids[index] for index in rows]
            scored = _continuation_nlls(model, cache, mask, last, found, tokenizer.pad_token_id)
            new_tokens = _greedy(model, cache, mask, last, params["max_new_tokens"], tokenizer)
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for index, text, (total, count) in zip(rows, texts, scored, strict=True):
            answers[index], nlls[index], counts[index] = text.strip(), total, count
    return answers, nlls, counts


def _positions(mask: Any) -> Any:
    """Each row's positions counted from 0 after its left padding, as generate counts them."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _continuation_nlls(
    model: Any, cache: Any, mask: Any, last: Any, continuations: list[list[int]], pad: int | None
) -> list[tuple[float, int]]:
    """The summed negative log-likelihood of each row's continuation after its cached prompt
    (whose last logits are ``last``) and its token count; the cache is left as it was."""
    import torch

    width = max(len(tokens) for tokens in continuations)
    if width == 0:
        return [(0.0, 0) for _ in continuations]
    tail = torch.full((len(continuations), width), 0 if pad is None else pad)
    labels = torch.full((len(continuations), width), IGNORED)
    tail_mask = torch.zeros_like(tail)
    for row, tokens in enumerate(continuations):
        tail[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        labels[row, : len(tokens)] = tail[row, : len(tokens)]
        tail_mask[row, : len(tokens)] = 1
    full_mask = torch.cat([mask, tail_mask.to(mask.device)], dim=1)
    logits = model(
        input_ids=tail.to(mask.device),
        attention_mask=full_mask,
        position_ids=_positions(full_mask)[:, -width:],
        past_key_values=cache,
        use_cache=True,
    ).logits[:, :-1]
    cache.crop(-width)  # back to the prompt
    # Token 0 is predicted by the prompt's last position, token i by the tail's i - 1.
    return labelled_nlls(torch.cat([last[:, None].to(logits.dtype), logits], dim=1), labels)


def _greedy(model: Any, cache: Any, mask: Any, last: Any, max_new: int, tokenizer: Any) -> Any:
    """Greedy decoding on from the cached prompt, one token per step for the whole batch, as
    ``model.generate(do_sample=False)`` decodes: a row that has ended gets the pad token."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ended = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
    chosen = []
    logits = last
    for step in range(max_new):
        token = torch.where(ended, pad, logits.argmax(dim=-1))
        chosen.append(token)
        if tokenizer.eos_token_id is not None:
            ended |= token == tokenizer.eos_token_id
        if bool(ended.all()) or step == max_new - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=_positions(mask)[:, -1:],
            past_key_values=cache,
            use_cache=True,
        ).logits[:, -1]
    return torch.stack(chosen, dim=1)


class EvaluationConfig(BaseModel):
    """``evaluate:`` parameters (every value is in conf/base/parameters_evaluate.yml)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    include_context: bool
    samples_in_report: int = Field(ge=0)
    seed: int
    # Bootstrap resamples behind every 95% interval.
    bootstrap_resamples: int = Field(ge=100)
    # A sentence-transformers folder; None: the packaged all-MiniLM-L6-v2.
    embedding_model: Path | None
    judge: JudgeConfig
    # System prompts scored on the candidate model: name -> prompt (None: no system turn).
    prompt_variants: dict[str, str | None]
    variant_metric: str
    canary: CanaryConfig | None


def score_model(
    folder: ModelFolder,
    validation_set: pd.DataFrame,
    chats: list[list[dict[str, str]]],
    params: dict,
    system_prompt: str | None = None,
) -> tuple[dict[str, dict], list[str]]:
    """One model's per-example scores on the validation set (reference perplexity as each
    example's summed negative log-likelihood and token count, ROUGE-L) and its answers to
    ``chats``, the validation prompts as every model is asked them."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS

    torch.manual_seed(params["seed"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = MODELS.causal_lm(folder.path)
    prompts = [
        tokenizer.apply_chat_template(
            with_system_prompt(chat, system_prompt), tokenize=False, add_generation_prompt=True
        )
        for chat in chats
    ]
    references = list(validation_set["reference"])
    with inference_precision():
        if hasattr(model, "get_base_model"):  # a soft prompt: PEFT builds its own cache
            answers = generate_answers(model, tokenizer, prompts, params)
            nlls, counts = reference_nlls(
                model, tokenizer, prompts, references, params["batch_size"]
            )
        else:
            answers, nlls, counts = answers_and_reference_nlls(
                model, tokenizer, prompts, references, params
            )
    scores = {
        "perplexity": {"values": nlls, "tokens": counts},
        "rouge_l": {"values": list(map(rouge_l, answers, references))},
    }
    return scores, answers


def validation_chats(
    validation_set: pd.DataFrame,
    passage_index: Folder,
    include_context: bool,
    retrieval_params: dict[str, Any],
) -> list[list[dict[str, str]]]:
    """The validation prompts as chats, grounded in the passages retrieved for them as every
    stage grounds its prompts (``retrieval``)."""
    from llm_pipeline.retrieval.conversations import grounding

    ground = grounding(passage_index.path, retrieval_params)
    rows = validation_set.to_dict(orient="records")
    return ground([prompt_messages(row, include_context) for row in rows])


def with_system_prompt(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """``messages`` with ``system_prompt`` as the first system turn (merged with one there)."""
    if not system_prompt:
        return messages
    if messages and messages[0]["role"] == "system":
        merged = f"{system_prompt}\n\n{messages[0]['content']}"
        return [{"role": "system", "content": merged}, *messages[1:]]
    return [{"role": "system", "content": system_prompt}, *messages]


def add_answer_scores(
    scores: dict[str, dict[str, dict]],
    answers: dict[str, list[str]],
    validation_set: pd.DataFrame,
    config: EvaluationConfig,
    contexts_judged: list[str | None] | None = None,
    self_judged: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Semantic similarity to the references and answer accuracy (one embedding model and one
    pass for every answer set), and the judged metrics (a judge loaded once, run on its
    controls first; groundedness against ``contexts_judged``, the passages the models were
    given, when there are any), added to each entry of ``scores``. The judged figures of the
    models in ``self_judged`` (grown from the judge's own model) are marked so."""
    from llm_pipeline.evaluation.similarity import answer_accuracy, answer_keys, embed
    from llm_pipeline.pipelines.evaluate.judge import JUDGED_METRICS, judge_with_controls

    references = list(validation_set["reference"])
    contexts = (
        list(validation_set["context"]) if "context" in validation_set else [None] * len(references)
    )
    keys = answer_keys(references, contexts)
    names = list(answers)
    flat = [answer for name in names for answer in answers[name]]
    encoded = embed([*references, *flat], config.embedding_model)
    reference_embeddings = encoded[: len(references)]
    rows = validation_set.to_dict(orient="records")
    judge = config.judge
    judged = judge_with_controls(
        rows,
        answers,
        judge,
        seed=config.seed,
        resamples=config.bootstrap_resamples,
        contexts=contexts_judged,
    )
    for index, name in enumerate(names):
        start = len(references) * (index + 1)
        share = encoded[start : start + len(references)].copy()
        # An empty answer says nothing: it scores 0, as unrelated text does, and is never right.
        share[[not answer.strip() for answer in answers[name]]] = 0.0
        scores[name]["similarity"] = {
            "values": [float(v) for v in (share * reference_embeddings).sum(axis=1)]
        }
        scores[name]["answer_accuracy"] = {
            "values": answer_accuracy(share, reference_embeddings, keys)
        }
        scores[name].update(judged[name])
        if name in self_judged:
            for metric in JUDGED_METRICS:
                scores[name][metric]["self_judged"] = True


def evaluate_models(
    validation_set: pd.DataFrame,
    starting_model: ModelFolder | None,
    pretrained_model: ModelFolder,
    sft_model: ModelFolder,
    aligned_model: ModelFolder,
    champion_model: ModelFolder | None,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
) -> tuple[dict, pd.DataFrame, dict[str, list[str]]]:
    """Per-example scores of every model on the same validation examples, their answers side
    by side for the report, and all their answers. ``base`` is what the user would otherwise
    have, the starting model as shipped (without one, the model pretrained from scratch);
    ``adapted`` the starting model after pretraining on the documents; then ``sft``,
    ``aligned`` and the current champion. Every model answers the same prompts, with the same
    retrieved passages."""
    config = EvaluationConfig.model_validate(params)
    models = {"base": starting_model or pretrained_model}
    if starting_model is not None:
        models["adapted"] = pretrained_model
    models.update(sft=sft_model, aligned=aligned_model)
    if champion_model is not None:
        models["champion"] = champion_model
    scores: dict[str, dict] = {}
    answers: dict[str, list[str]] = {}
    samples = validation_set[["id", "prompt", "reference"]].copy()
    chats = validation_chats(
        validation_set, passage_index, config.include_context, retrieval_params
    )
    for name, folder in models.items():
        started = time.perf_counter()
        scores[name], answers[name] = score_model(folder, validation_set, chats, params)
        samples[name] = answers[name]
        logger.info(
            "%s: %d answers and reference perplexities in %.0f s",
            name,
            len(chats),
            time.perf_counter() - started,
        )
    started = time.perf_counter()
    add_answer_scores(
        scores, answers, validation_set, config, given_passages(chats), self_judged(models, config)
    )
    logger.info(
        "Similarity, answer accuracy and judged metrics in %.0f s", time.perf_counter() - started
    )
    return scores, samples.head(config.samples_in_report), answers


def self_judged(models: dict[str, ModelFolder], config: EvaluationConfig) -> set[str]:
    """The models a local judge scores its own kind of answer in: those grown from the judge's
    model (``shares_starting_model``). A judge favours text like its own: their judged figures
    carry ``self_judged`` and the report says so."""
    from llm_pipeline.pipelines.evaluate.judge import judge_model_folder, shares_starting_model

    judge = judge_model_folder(config.judge)
    if judge is None:
        return set()
    return {name for name, folder in models.items() if shares_starting_model(judge, folder.path)}


def given_passages(chats: list[list[dict[str, str]]]) -> list[str | None] | None:
    """The system turn each chat was grounded with, when any was: groundedness is judged
    against what the model was given."""
    systems = [
        chat[0]["content"] if chat and chat[0]["role"] == "system" else None for chat in chats
    ]
    return systems if any(systems) else None


def score_prompt_variants(
    validation_set: pd.DataFrame,
    aligned_model: ModelFolder,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
) -> dict[str, dict]:
    """Per-example scores of the aligned model under each system prompt of
    ``prompt_variants``, so a prompt change is measured like a model change."""
    config = EvaluationConfig.model_validate(params)
    scores: dict[str, dict] = {}
    answers: dict[str, list[str]] = {}
    if not config.prompt_variants:
        return scores
    chats = validation_chats(
        validation_set, passage_index, config.include_context, retrieval_params
    )
    for name, system_prompt in config.prompt_variants.items():
        scores[name], answers[name] = score_model(
            aligned_model, validation_set, chats, params, system_prompt
        )
    if answers:
        # Variants are compared on variant_metric; judging each again would cost a judge run.
        unjudged = config.model_copy(
            update={"judge": config.judge.model_copy(update={"kind": "none"})}
        )
        add_answer_scores(scores, answers, validation_set, unjudged)
    return scores


def summarise_scores(
    model_scores: dict[str, dict], variant_scores: dict[str, dict], params: dict[str, Any]
) -> dict[str, Any]:
    """Every figure with its bootstrap 95% interval, the paired comparisons between models
    (each against those before it, and every model against the champion), and the best prompt
    variant."""
    config = EvaluationConfig.model_validate(params)
    count, seed = config.bootstrap_resamples, config.seed
    samples = {name: _samples(found) for name, found in model_scores.items()}
    figures = {
        name: {
            metric: _figure(sample, model_scores[name][metric], count, seed)
            for metric, sample in found.items()
        }
        for name, found in samples.items()
    }
    order = [name for name in ("base", "adapted", "sft", "aligned") if name in samples]
    pairs = [(later, earlier) for i, later in enumerate(order) for earlier in order[:i]]
    if "champion" in samples:
        pairs += [(name, "champion") for name in order if name != "base"]
    comparisons = {
        f"{name}_vs_{against}": _compare(samples[name], samples[against], count, seed)
        for name, against in pairs
    }
    variants = {
        name: {
            metric: sample if isinstance(sample, dict) else statistics.interval(sample, count, seed)
            for metric, sample in _samples(found).items()
        }
        for name, found in variant_scores.items()
    }
    return {
        "models": figures,
        "comparisons": comparisons,
        "directions": {
            metric: statistics.DIRECTIONS[metric] for found in figures.values() for metric in found
        },
        "prompt_variants": _best_variant(variants, config.variant_metric),
    }


def _figure(sample: statistics.Sample | dict, data: dict, count: int, seed: int) -> dict[str, Any]:
    """A metric's figure with its interval, and the judge's control figure when it had one."""
    figure = sample if isinstance(sample, dict) else statistics.interval(sample, count, seed)
    for key in ("control", "self_judged"):
        if key in data and key not in figure:
            figure = {**figure, key: data[key]}
    return figure


def _samples(found: dict[str, dict]) -> dict[str, statistics.Sample | dict]:
    """Per-example data as ``Sample``s; a figure that was not computed stays as it is."""
    return {
        metric: data
        if data.get("computed") is False
        else statistics.Sample.of(data["values"], data.get("tokens"))
        for metric, data in found.items()
    }


def _compare(
    first: dict[str, statistics.Sample | dict],
    second: dict[str, statistics.Sample | dict],
    count: int,
    seed: int,
) -> dict[str, dict]:
    compared = {}
    for metric, sample in first.items():
        other = second.get(metric)
        if isinstance(sample, dict) or not isinstance(other, statistics.Sample):
            reason = sample["reason"] if isinstance(sample, dict) else "not computed for both"
            compared[metric] = statistics.not_computed(reason)
            continue
        compared[metric] = statistics.compare(
            sample, other, statistics.DIRECTIONS[metric], count, seed
        )
    return compared


def _best_variant(variants: dict[str, dict], metric: str) -> dict[str, Any]:
    """The variants' figures and the one best on ``metric`` (None when none was measured)."""
    measured = {
        name: figures[metric]["value"]
        for name, figures in variants.items()
        if statistics.is_computed(figures.get(metric, {"computed": False}))
    }
    best = None
    if measured:
        pick = max if statistics.DIRECTIONS[metric] else min
        best = pick(measured, key=measured.get)
    if best is not None:
        logger.info("Best prompt variant on %s: %s (%.4f)", metric, best, measured[best])
    return {"metric": metric, "best": best, "variants": variants}


def report_metrics(
    evaluation_summary: dict,
    alignment_evidence: dict,
    canary_exposure: dict,
    retrieval_evidence: dict,
    document_perplexity: dict,
) -> tuple[dict, dict]:
    """metrics.json (the models' figures with intervals, the comparisons, prompt variants, the
    alignment evidence, canary exposure, retrieval recall and held-out document perplexity)
    and its numbers as MLflow
    metrics, named by their path (``aligned.rouge_l.value``, ``retrieval.recall_at_3.value``)."""
    metrics = {
        **evaluation_summary["models"],
        "comparisons": evaluation_summary["comparisons"],
        "prompt_variants": evaluation_summary["prompt_variants"],
        "alignment": alignment_evidence,
        "canary": canary_exposure,
        "retrieval": retrieval_evidence,
        "documents": document_perplexity,
    }
    tracked = {name: {"value": float(value), "step": 0} for name, value in _numbers(metrics, "")}
    for model, figures in evaluation_summary["models"].items():
        for metric, figure in figures.items():
            if statistics.is_computed(figure):
                logger.info(
                    "%s %s: %.4f [%.4f, %.4f]",
                    model,
                    metric,
                    figure["value"],
                    figure["low"],
                    figure["high"],
                )
            else:
                logger.info("%s %s: not computed (%s)", model, metric, figure["reason"])
    return metrics, tracked


def draw_evaluation_report(
    evaluation_summary: dict, evaluation_samples: pd.DataFrame
) -> tuple[pd.DataFrame, str, Any, str]:
    """The report people read: a table of every model and metric with intervals (CSV and
    Markdown with the comparisons), bar charts with the intervals, and answers side by side."""
    from llm_pipeline.pipelines.evaluate import report

    results = evaluation_summary["models"]
    directions = evaluation_summary["directions"]
    comparisons = [
        {"metric": metric, "model": model, "against": against, **found}
        for pair, figures in evaluation_summary["comparisons"].items()
        for model, against in [pair.split("_vs_")]
        for metric, found in figures.items()
        if found.get("computed") is not False
    ]
    models = [name for name in results if name in evaluation_samples.columns]
    return (
        report.metrics_table(results, directions),
        report.metrics_markdown(results, directions, comparisons),
        report.metric_charts(results, directions),
        report.answers_side_by_side(evaluation_samples, models),
    )


def _numbers(tree: Any, prefix: str) -> list[tuple[str, float]]:
    """The numeric leaves of a nested dict as (dotted path, value); booleans as 0/1, except the
    marker of a figure that was not computed, which has no number."""
    if isinstance(tree, dict):
        return [
            pair
            for key, value in tree.items()
            if key != "computed"
            for pair in _numbers(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(tree, bool):
        return [(prefix, float(tree))]
    if isinstance(tree, (int, float)) and math.isfinite(tree):
        return [(prefix, float(tree))]
    return []


# --- alignment evidence ----------------------------------------------------------------------


def answer_log_likelihoods(
    model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    answers: list[str],
    batch_size: int,
) -> list[float]:
    """log p(answer | prompt) under ``model``: the summed log-probabilities of the answer's
    tokens (its end-of-turn tokens included) after the chat-formatted prompt."""
    sequences = []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt_ids = tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True
        )
        turns = [*prompt, {"role": "assistant", "content": answer}]
        full_ids = tokenizer.apply_chat_template(turns, tokenize=True)
        ids, head = _token_ids(full_ids), len(_token_ids(prompt_ids))
        sequences.append((ids, [IGNORED] * head + ids[head:]))
    nlls, _ = summed_nlls(model, sequences, tokenizer.pad_token_id, batch_size)
    return [-nll for nll in nlls]


def _token_ids(encoded: Any) -> list[int]:
    """``apply_chat_template(tokenize=True)`` gives ids or, in some versions, an encoding."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def pair_log_likelihoods(
    folder: ModelFolder, pairs: pd.DataFrame, prompts: list[list[dict]], batch_size: int
) -> dict:
    """log p(chosen | prompt) and log p(rejected | prompt) of each pair under one model, its
    prompt asked as ``prompts`` has it (grounded as in training)."""
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS

    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = MODELS.causal_lm(folder.path)
    with inference_precision():
        return {
            side: answer_log_likelihoods(model, tokenizer, prompts, list(pairs[side]), batch_size)
            for side in ("chosen", "rejected")
        }


def fraction_above(first: list[float], second: list[float]) -> float:
    """The fraction of positions where ``first`` is strictly above ``second``."""
    return sum(a > b for a, b in zip(first, second, strict=True)) / len(first)


def alignment_method(aligned_model: ModelFolder) -> str:
    """``dpo`` or ``rlhf (<algorithm>)``, as the aligned model's own config says."""
    algorithm = aligned_model.read_run_config().get("algorithm")
    return f"rlhf ({algorithm})" if algorithm else "dpo"


def alignment_beta(aligned_model: ModelFolder) -> float:
    """The KL coefficient the aligned model was trained with, from the config in its folder."""
    config = aligned_model.read_run_config()
    for section in (config.get("dpo"), config.get(str(config.get("algorithm")))):
        if isinstance(section, dict) and section.get("beta"):
            return float(section["beta"])
    return 0.1  # TRL's DPOConfig default


def reward_model_scores(
    reward_model: ModelFolder,
    prompts: list[list[dict[str, str]]],
    answers: dict[str, list[str]],
    batch_size: int,
) -> dict[str, list[float]]:
    """The reward model's score of each model's answers to the same prompts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm_pipeline.training.models import inference_placement
    from llm_pipeline.training.reward import score_conversations

    tokenizer = AutoTokenizer.from_pretrained(str(reward_model.path))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(reward_model.path), **inference_placement()
    ).eval()
    scores = {}
    for name, texts in answers.items():
        conversations = [
            [*prompt, {"role": "assistant", "content": text}]
            for prompt, text in zip(prompts, texts, strict=True)
        ]
        with inference_precision():
            scores[name] = score_conversations(model, tokenizer, conversations, batch_size)
    return scores


def measure_alignment(
    preferences_validation: pd.DataFrame,
    validation_set: pd.DataFrame,
    validation_answers: dict[str, list[str]],
    sft_model: ModelFolder,
    aligned_model: ModelFolder,
    reward_model: ModelFolder,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
) -> dict[str, Any]:
    """Whether the aligned model prefers what people preferred more often than the fine-tuned
    model does, and whether the reward model scores its answers higher (module docstring)."""
    pairs = preferences_validation
    if pairs.empty:
        raise ValueError(
            "validated_preferences_validation is empty, so there is no held-out preference pair "
            "to measure alignment on: give ingest more preference pairs or a larger validation "
            "share (ingest.split)."
        )
    from llm_pipeline.retrieval.conversations import grounding

    batch_size = params["batch_size"]
    pair_prompts = grounding(passage_index.path, retrieval_params)(
        [[{"role": "user", "content": prompt}] for prompt in pairs["prompt"]]
    )
    sft = pair_log_likelihoods(sft_model, pairs, pair_prompts, batch_size)
    aligned = pair_log_likelihoods(aligned_model, pairs, pair_prompts, batch_size)
    beta = alignment_beta(aligned_model)
    implicit = {
        side: [beta * (a - s) for a, s in zip(aligned[side], sft[side], strict=True)]
        for side in ("chosen", "rejected")
    }
    margins = [c - r for c, r in zip(implicit["chosen"], implicit["rejected"], strict=True)]
    prompts = validation_chats(
        validation_set, passage_index, params["include_context"], retrieval_params
    )
    # The answers evaluate_models generated to the same prompts: greedy decoding is
    # deterministic, so generating them again would only cost minutes.
    answers = {name: validation_answers[name] for name in ("sft", "aligned")}
    ranked = {
        name: statistics.Sample.of(
            [float(c > r) for c, r in zip(found["chosen"], found["rejected"], strict=True)]
        )
        for name, found in (("sft", sft), ("aligned", aligned))
    }
    count, seed = params["bootstrap_resamples"], params["seed"]
    evidence = {
        "method": alignment_method(aligned_model),
        "heldout_pairs": len(pairs),
        "sft_preference_accuracy": fraction_above(sft["chosen"], sft["rejected"]),
        "aligned_preference_accuracy": fraction_above(aligned["chosen"], aligned["rejected"]),
        # Paired over the same pairs: is the aligned model's gain larger than its interval?
        "preference_accuracy_gain": statistics.compare(
            ranked["aligned"], ranked["sft"], True, count, seed
        ),
        "implicit_reward_accuracy": fraction_above(implicit["chosen"], implicit["rejected"]),
        "implicit_reward_interval": statistics.interval(
            statistics.Sample.of([float(m > 0) for m in margins]), count, seed
        ),
        "implicit_reward_margin": sum(margins) / len(margins),
        "beta": beta,
        "validation_prompts": len(prompts),
        **reward_model_evidence(reward_model, prompts, answers, batch_size, count, seed),
    }
    gain, implicit_interval = (
        evidence["preference_accuracy_gain"],
        evidence["implicit_reward_interval"],
    )
    logger.info(
        "Held-out pairs ranked right: sft %.3f, aligned %.3f (gain %+.3f [%.3f, %.3f]); implicit "
        "reward accuracy %.3f [%.3f, %.3f]",
        evidence["sft_preference_accuracy"],
        evidence["aligned_preference_accuracy"],
        gain["difference"],
        gain["low"],
        gain["high"],
        evidence["implicit_reward_accuracy"],
        implicit_interval["low"],
        implicit_interval["high"],
    )
    return evidence


def reward_model_evidence(
    reward_model: ModelFolder,
    prompts: list[list[dict[str, str]]],
    answers: dict[str, list[str]],
    batch_size: int,
    count: int,
    seed: int,
) -> dict[str, Any]:
    """The reward model's mean score of the sft and the aligned model's answers, their paired
    gain and the reward model's own held-out accuracy; without a reward model (DPO trained
    none), the gain is not computed, with the reason, and the scores are None."""
    if reward_model.not_trained:
        logger.info(
            "Reward model score of the answers: not computed (%s)", reward_model.not_trained
        )
        return {
            "sft_reward_model_score": None,
            "aligned_reward_model_score": None,
            "reward_model_score_gain": statistics.not_computed(
                f"no reward model: {reward_model.not_trained}"
            ),
            "reward_model_heldout_accuracy": None,
        }
    scores = reward_model_scores(reward_model, prompts, answers, batch_size)
    scored = {name: statistics.Sample.of(values) for name, values in scores.items()}
    evidence = {
        "sft_reward_model_score": sum(scores["sft"]) / len(prompts),
        "aligned_reward_model_score": sum(scores["aligned"]) / len(prompts),
        "reward_model_score_gain": statistics.compare(
            scored["aligned"], scored["sft"], True, count, seed
        ),
        "reward_model_heldout_accuracy": reward_model_accuracy(reward_model),
    }
    gain = evidence["reward_model_score_gain"]
    logger.info(
        "Reward model score of greedy answers: sft %.3f, aligned %.3f (gain %+.3f [%.3f, %.3f])",
        evidence["sft_reward_model_score"],
        evidence["aligned_reward_model_score"],
        gain["difference"],
        gain["low"],
        gain["high"],
    )
    return evidence


def reward_model_accuracy(reward_model: ModelFolder) -> float | None:
    """The reward model's own held-out pairwise accuracy, as its training recorded it."""
    from llm_pipeline.training.reward import REWARD_METRICS_FILE

    if not (reward_model.path / REWARD_METRICS_FILE).exists():
        return None
    return reward_model.read_json(REWARD_METRICS_FILE).get("heldout_accuracy")


# --- the documents ------------------------------------------------------------------------------

DOCUMENT_BLOCK = 256


def document_block_nlls(
    folder: ModelFolder, texts: list[str], batch_size: int
) -> tuple[list, list]:
    """Summed negative log-likelihood and predicted-token count of each block of
    ``DOCUMENT_BLOCK`` tokens of the held-out documents under one model."""
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS

    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = MODELS.causal_lm(folder.path)
    blocks = [
        ids[start : start + DOCUMENT_BLOCK]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), DOCUMENT_BLOCK)
        if len(ids[start : start + DOCUMENT_BLOCK]) > 1
    ]
    with inference_precision():
        return summed_nlls(
            model, [(block, block) for block in blocks], tokenizer.pad_token_id, batch_size
        )


def measure_document_perplexity(
    documents_validation: pd.DataFrame,
    starting_model: ModelFolder | None,
    pretrained_model: ModelFolder,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Perplexity of the held-out documents before and after the pretrain stage: the starting
    model as shipped (``base``) against it adapted to the documents (``adapted``), each with its
    bootstrap interval over blocks of text, and their paired difference; from scratch, the
    pretrained model alone (``base``)."""
    config = EvaluationConfig.model_validate(params)
    texts = [text for text in documents_validation.get("text", []) if str(text).strip()]
    if not texts:
        return statistics.not_computed("no held-out documents (ingest.split)")
    models = {"base": starting_model or pretrained_model}
    if starting_model is not None:
        models["adapted"] = pretrained_model
    samples = {
        name: statistics.Sample.of(*document_block_nlls(folder, texts, config.batch_size))
        for name, folder in models.items()
    }
    count, seed = config.bootstrap_resamples, config.seed
    found: dict[str, Any] = {
        name: statistics.interval(sample, count, seed) for name, sample in samples.items()
    }
    if "adapted" in samples:
        found["adapted_vs_base"] = statistics.compare(
            samples["adapted"], samples["base"], False, count, seed
        )
        logger.info(
            "Held-out document perplexity: base %.3f [%.3f, %.3f], adapted %.3f [%.3f, %.3f]",
            *(found[name][key] for name in ("base", "adapted") for key in ("value", "low", "high")),
        )
    return found


# --- retrieval --------------------------------------------------------------------------------

RECALL_AT = (1, 3, 5)


def measure_retrieval(
    validation_set: pd.DataFrame,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
) -> dict[str, Any]:
    """Retrieval on its own: recall@k, the share of validation questions whose top k passages
    hold the facts that answer them (their ``context``, or their reference answer; see
    ``pipelines/evaluate/recall.py``), with bootstrap intervals; measured
    whether or not retrieval is on, so that turning it on is an informed choice."""
    from llm_pipeline.pipelines.evaluate.recall import past_answer_recall, recall_of_rankings
    from llm_pipeline.retrieval import PassageIndex, RetrievalConfig

    config = RetrievalConfig.model_validate(retrieval_params)
    rows = [
        row
        for row in validation_set.to_dict(orient="records")
        if isinstance(row.get("context"), str) and row["context"].strip()
    ]
    if not rows:
        return statistics.not_computed("no validation example has a context to find")
    index = PassageIndex.load(Path(passage_index.path))
    ks = sorted({*RECALL_AT, config.top_k} - {0})
    found = index.search([row["prompt"] for row in rows], max(ks))
    contexts = [row["context"] for row in rows]
    references = [row["reference"] for row in rows]
    count, seed = params["bootstrap_resamples"], params["seed"]
    recall = {
        f"recall_at_{k}": statistics.interval(
            statistics.Sample.of(
                recall_of_rankings(
                    [hits[:k] for hits in found], contexts, index.passages, references
                )
            ),
            count,
            seed,
        )
        for k in ks
    }
    if index.answers:
        past = past_answer_recall(
            index,
            [row["prompt"] for row in rows],
            references,
            contexts,
            sorted({*RECALL_AT, max(config.past_answers, 1)}),
            params["embedding_model"],
        )
        recall |= {
            f"past_answer_recall_at_{k}": statistics.interval(
                statistics.Sample.of(values), count, seed
            )
            for k, values in past.items()
        }
    chosen = recall[f"recall_at_{max(config.top_k, 1)}"]
    logger.info(
        "Retrieval: recall@%d %.3f [%.3f, %.3f] on %d validation questions (%d passages)",
        max(config.top_k, 1),
        chosen["value"],
        chosen["low"],
        chosen["high"],
        len(rows),
        len(index.passages),
    )
    return {
        "enabled": config.enabled,
        "top_k": config.top_k,
        "passages": len(index.passages),
        "past_answers": config.past_answers,
        **recall,
    }


# --- memorisation ------------------------------------------------------------------------------


def measure_canary_exposure(aligned_model: ModelFolder, params: dict[str, Any]) -> dict[str, Any]:
    """How far the aligned model memorised the canary planted in the training data: the rank
    and exposure of its secret among random ones, and whether greedy decoding repeats it."""
    from transformers import AutoTokenizer

    from llm_pipeline.pipelines.evaluate.canary import canary_exposure
    from llm_pipeline.pipelines.evaluate.loaded_models import MODELS

    config = EvaluationConfig.model_validate(params)
    if config.canary is None:
        return statistics.not_computed("no canary configured (evaluate.canary: null)")
    canary = config.canary
    tokenizer = AutoTokenizer.from_pretrained(str(aligned_model.path))
    model = MODELS.causal_lm(aligned_model.path)
    exposure = canary_exposure(model, tokenizer, canary)
    log = logger.warning if exposure["regurgitated"] else logger.info
    log(
        "Canary exposure %.2f of %.2f (rank %d of %d)%s",
        exposure["exposure"],
        exposure["max_exposure"],
        exposure["rank"],
        exposure["candidates"] + 1,
        ": the model repeats the planted secret" if exposure["regurgitated"] else "",
    )
    return exposure
