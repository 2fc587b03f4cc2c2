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
  held-out prompts.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

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


def reference_perplexity(
    model: Any, tokenizer: Any, prompts: list[str], references: list[str], batch_size: int
) -> float:
    """exp of the mean negative log-likelihood of the reference tokens given their prompts."""
    import torch

    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(prompts), batch_size):
        batch_ids, batch_labels = [], []
        for prompt, reference in zip(
            prompts[start : start + batch_size], references[start : start + batch_size], strict=True
        ):
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            full_ids = tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]
            labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :]
            batch_ids.append(full_ids)
            batch_labels.append(labels)
        width = max(len(ids) for ids in batch_ids)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch_ids])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for lab in batch_labels])
        attention = (
            torch.arange(width)[None, :] < torch.tensor([len(i) for i in batch_ids])[:, None]
        ).long()
        with torch.no_grad():
            # A prompt-tuned model puts its soft prompt's positions first: keep the text's.
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, -width:-1]
        targets = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            targets.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        total_nll += nll.item()
        total_tokens += int((targets != -100).sum())
    if total_tokens == 0:
        raise ValueError("No reference tokens to score: the validation set is empty.")
    return math.exp(total_nll / total_tokens)


def generate_answers(model: Any, tokenizer: Any, prompts: list[str], params: dict) -> list[str]:
    """Greedy answers to ``prompts``, in batches padded on the left."""
    import torch

    # Generation continues from the last prompt token, so pad on the left.
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    answers = []
    for start in range(0, len(prompts), params["batch_size"]):
        batch = tokenizer(
            prompts[start : start + params["batch_size"]],
            add_special_tokens=False,
            return_tensors="pt",
            padding=True,
        )
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=params["max_new_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        answers.extend(
            text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        )
    return answers


def score_model(
    folder: ModelFolder, validation_set: pd.DataFrame, params: dict
) -> tuple[dict, list[str]]:
    """Perplexity and ROUGE-L of one model on the validation set, and its answers."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    torch.manual_seed(params["seed"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path).eval()
    rows = validation_set.to_dict(orient="records")
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(row, params["include_context"]),
            tokenize=False,
            add_generation_prompt=True,
        )
        for row in rows
    ]
    references = [row["reference"] for row in rows]
    answers = generate_answers(model, tokenizer, prompts, params)
    metrics = {
        "perplexity": reference_perplexity(
            model, tokenizer, prompts, references, params["batch_size"]
        ),
        "rouge_l": sum(map(rouge_l, answers, references)) / max(len(rows), 1),
        "answer_words": sum(len(words(a)) for a in answers) / max(len(rows), 1),
        "examples": len(rows),
    }
    return metrics, answers


def evaluate_models(
    validation_set: pd.DataFrame,
    base_model: ModelFolder,
    sft_model: ModelFolder,
    aligned_model: ModelFolder,
    params: dict[str, Any],
) -> tuple[dict, pd.DataFrame]:
    """Metrics per model and their answers side by side."""
    models = {"base": base_model, "sft": sft_model, "aligned": aligned_model}
    metrics: dict[str, dict] = {}
    samples = validation_set[["id", "prompt", "reference"]].copy()
    for name, folder in models.items():
        metrics[name], samples[name] = score_model(folder, validation_set, params)
        logger.info(
            "%s: perplexity %.3f, ROUGE-L %.3f on %d examples",
            name,
            metrics[name]["perplexity"],
            metrics[name]["rouge_l"],
            metrics[name]["examples"],
        )
    return metrics, samples.head(params["samples_in_report"])


def report_metrics(model_metrics: dict, alignment_evidence: dict) -> tuple[dict, dict]:
    """metrics.json (the models' figures and, under ``alignment``, the evidence) and the same
    numbers as MLflow metrics (``<model>.<figure>``, ``alignment.<figure>``)."""
    metrics = {**model_metrics, "alignment": alignment_evidence}
    tracked = {
        f"{section}.{name}": {"value": float(value), "step": 0}
        for section, figures in metrics.items()
        for name, value in figures.items()
        if isinstance(value, (int, float))
    }
    return metrics, tracked


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
    import torch

    sequences = []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt_ids = tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True
        )
        turns = [*prompt, {"role": "assistant", "content": answer}]
        full_ids = tokenizer.apply_chat_template(turns, tokenize=True)
        sequences.append((_token_ids(full_ids), len(_token_ids(prompt_ids))))
    totals: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        with torch.no_grad():
            # A prompt-tuned model puts its soft prompt's positions first: keep the text's.
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, -width:-1]
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        picked = log_probs.gather(-1, input_ids[:, 1:, None])[..., 0]
        for row, (ids, prompt_length) in enumerate(batch):
            # Token i is predicted at position i - 1.
            totals.append(picked[row, prompt_length - 1 : len(ids) - 1].sum().item())
    return totals


def _token_ids(encoded: Any) -> list[int]:
    """``apply_chat_template(tokenize=True)`` gives ids or, in some versions, an encoding."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def pair_log_likelihoods(folder: ModelFolder, pairs: pd.DataFrame, batch_size: int) -> dict:
    """log p(chosen | prompt) and log p(rejected | prompt) of each pair under one model."""
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path).eval()
    prompts = [[{"role": "user", "content": prompt}] for prompt in pairs["prompt"]]
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
) -> dict[str, float]:
    """The reward model's mean score of each model's answers to the same prompts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm_pipeline.training.reward import score_conversations

    tokenizer = AutoTokenizer.from_pretrained(str(reward_model.path))
    model = AutoModelForSequenceClassification.from_pretrained(str(reward_model.path)).eval()
    means = {}
    for name, texts in answers.items():
        conversations = [
            [*prompt, {"role": "assistant", "content": text}]
            for prompt, text in zip(prompts, texts, strict=True)
        ]
        scores = score_conversations(model, tokenizer, conversations, batch_size)
        means[name] = sum(scores) / len(scores)
    return means


def greedy_answers(folder: ModelFolder, prompts: list[list[dict]], params: dict) -> list[str]:
    """One model's greedy answers to chat prompts, as the validation set's are generated."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    torch.manual_seed(params["seed"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path).eval()
    texts = [
        tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        for turns in prompts
    ]
    return generate_answers(model, tokenizer, texts, params)


def measure_alignment(
    preferences_validation: pd.DataFrame,
    sft_model: ModelFolder,
    aligned_model: ModelFolder,
    reward_model: ModelFolder,
    params: dict[str, Any],
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
    batch_size = params["batch_size"]
    sft = pair_log_likelihoods(sft_model, pairs, batch_size)
    aligned = pair_log_likelihoods(aligned_model, pairs, batch_size)
    beta = alignment_beta(aligned_model)
    implicit = {
        side: [beta * (a - s) for a, s in zip(aligned[side], sft[side], strict=True)]
        for side in ("chosen", "rejected")
    }
    margins = [c - r for c, r in zip(implicit["chosen"], implicit["rejected"], strict=True)]
    prompts = [[{"role": "user", "content": p}] for p in dict.fromkeys(pairs["prompt"])]
    answers = {
        "sft": greedy_answers(sft_model, prompts, params),
        "aligned": greedy_answers(aligned_model, prompts, params),
    }
    scores = reward_model_scores(reward_model, prompts, answers, batch_size)
    evidence = {
        "method": alignment_method(aligned_model),
        "heldout_pairs": len(pairs),
        "sft_preference_accuracy": fraction_above(sft["chosen"], sft["rejected"]),
        "aligned_preference_accuracy": fraction_above(aligned["chosen"], aligned["rejected"]),
        "implicit_reward_accuracy": fraction_above(implicit["chosen"], implicit["rejected"]),
        "implicit_reward_margin": sum(margins) / len(margins),
        "beta": beta,
        "heldout_prompts": len(prompts),
        "sft_reward_model_score": scores["sft"],
        "aligned_reward_model_score": scores["aligned"],
        "reward_model_heldout_accuracy": reward_model_accuracy(reward_model),
    }
    logger.info(
        "Held-out pairs ranked right: sft %.3f, aligned %.3f (implicit reward %.3f); reward model "
        "score of greedy answers: sft %.3f, aligned %.3f",
        evidence["sft_preference_accuracy"],
        evidence["aligned_preference_accuracy"],
        evidence["implicit_reward_accuracy"],
        evidence["sft_reward_model_score"],
        evidence["aligned_reward_model_score"],
    )
    return evidence


def reward_model_accuracy(reward_model: ModelFolder) -> float | None:
    """The reward model's own held-out pairwise accuracy, as its training recorded it."""
    from llm_pipeline.training.reward import REWARD_METRICS_FILE

    if not (reward_model.path / REWARD_METRICS_FILE).exists():
        return None
    return reward_model.read_json(REWARD_METRICS_FILE).get("heldout_accuracy")
