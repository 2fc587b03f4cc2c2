"""Evaluate: perplexity of the reference answers and similarity of generated answers, per model.

All models are scored on the same held-out validation set with the same prompts, so their
figures compare directly. Runs in the Kedro process: inference on a validation set is small
next to training.
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
) -> tuple[dict, dict, pd.DataFrame]:
    """Metrics per model, the same as MLflow metrics, and answers side by side."""
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
    tracked = {
        f"{model}.{metric}": {"value": float(value), "step": 0}
        for model, figures in metrics.items()
        for metric, value in figures.items()
    }
    return metrics, tracked, samples.head(params["samples_in_report"])
