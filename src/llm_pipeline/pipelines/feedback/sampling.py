"""Several sampled answers per prompt from a model folder: the candidates that feedback ranks.

AI feedback judges them and writes the best and the worst as a preference pair; the human review
export shows them to people. Sampling is seeded, so the same prompts, model and parameters give
the same answers on every run (the batch size included: prompts batched together draw from one
random stream).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Prompt = str | list[dict[str, str]]


class GenerationConfig(BaseModel):
    """How answers are sampled (``feedback.generation`` in parameters_feedback.yml)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(gt=0)
    top_p: float = Field(gt=0, le=1)
    seed: int
    # Sequences generated at once (prompts x answers); memory grows with it.
    batch_size: int = Field(ge=1)


def chat_turns(prompt: Prompt) -> list[dict[str, str]]:
    """A prompt as chat turns: a string is one user turn; turns are kept as they are."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def sample_answers(
    model_dir: Path | str,
    prompts: Sequence[Prompt],
    n: int,
    generation_params: dict[str, Any],
) -> list[list[str]]:
    """``n`` sampled answers to each prompt (a user message, or chat turns) from ``model_dir``.

    The model's chat template formats each prompt; answers are sampled with the temperature and
    top-p of ``generation_params``, several prompts per batch, under its seed (the global random
    state is left as it was).
    """
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import inference_placement, load_causal_lm

    if n < 1:
        raise ValueError(f"answers per prompt is {n}; it must be at least 1.")
    config = GenerationConfig.model_validate(generation_params)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_causal_lm(model_dir, **inference_placement()).eval()
    texts = [
        tokenizer.apply_chat_template(chat_turns(p), tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    per_batch = max(1, config.batch_size // n)
    answers: list[list[str]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for start in range(0, len(texts), per_batch):
            answers += _sample_batch(model, tokenizer, texts[start : start + per_batch], n, config)
    return answers


def _sample_batch(
    model: Any, tokenizer: Any, texts: list[str], n: int, config: GenerationConfig
) -> list[list[str]]:
    """``n`` answers to each of ``texts`` (chat-formatted prompts) from one ``generate`` call."""
    import torch

    # Generation continues from the last prompt token, so pad on the left.
    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
    batch = batch.to(model.device)
    with torch.inference_mode():
        output = model.generate(
            **batch,
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=0,  # only top-p truncates, as the parameters say
            max_new_tokens=config.max_new_tokens,
            num_return_sequences=n,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    decoded = [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    # generate returns the n sequences of each prompt one after another.
    return [decoded[i * n : (i + 1) * n] for i in range(len(texts))]
