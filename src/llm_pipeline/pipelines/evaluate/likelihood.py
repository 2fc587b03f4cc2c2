"""Log-likelihoods of labelled tokens, the one scoring pass behind reference perplexity, document
perplexity, preference log-probabilities, the likelihood judge and the canary.

Two things make it cheaper than a plain ``model(...).logits`` over the batch, with the same
figures: sequences are batched in order of length (less padding), and the language-model head
and the log-softmax run only at the positions whose next token is labelled (transformers'
boolean ``logits_to_keep``, as the training jobs' ``answer_loss.py`` does), not over the
prompt, which is most of every grounded sequence, nor over padding: 49,152 vocabulary logits
per prompt token cost about a fifth of SmolLM2-135M's forward pass and more in the log-softmax
after it.
"""

from __future__ import annotations

import inspect
from typing import Any

# The label of a position not scored, as the training jobs' loss has it.
from llm_pipeline.training.answer_loss import IGNORED


def summed_nlls(
    model: Any, sequences: list[tuple[list[int], list[int]]], pad: int | None, batch_size: int
) -> tuple[list[float], list[int]]:
    """Per (token ids, labels) sequence, the summed negative log-likelihood of its labelled
    tokens (``IGNORED``: not scored; token i is predicted at position i - 1, so position 0 is
    never scored) and their count, in the order given."""
    import torch

    from llm_pipeline.training.answer_loss import next_token_labels
    from llm_pipeline.training.jobs import batches_by_length

    filler = 0 if pad is None else pad
    # Where the model's first weights are (the inputs' device under device_map="auto").
    device = next(model.parameters()).device
    keeps = accepts_logits_to_keep(model)
    virtual = soft_prompt_length(model)
    nlls: list[float] = [0.0] * len(sequences)
    counts: list[int] = [0] * len(sequences)
    for rows in batches_by_length([len(ids) for ids, _ in sequences], batch_size):
        batch = [sequences[index] for index in rows]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [filler] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [IGNORED] * (width - len(lab)) for _, lab in batch])
        attention = (
            torch.arange(width)[None, :] < torch.tensor([len(ids) for ids, _ in batch])[:, None]
        ).long()
        input_ids, labels, attention = (t.to(device) for t in (input_ids, labels, attention))
        with torch.no_grad():
            if keeps:
                # Position i predicts token i + 1: the head projects where that one is labelled
                # (a soft prompt's positions, first, never).
                following = next_token_labels(labels)
                keep = following != IGNORED
                before = torch.zeros(len(batch), virtual, dtype=torch.bool, device=device)
                logits = model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    logits_to_keep=torch.cat([before, keep], dim=1),
                ).logits
                found = kept_nlls(logits, following[keep], keep)
            else:
                # A prompt-tuned model puts its soft prompt's positions first: keep the text's.
                logits = model(input_ids=input_ids, attention_mask=attention).logits
                found = labelled_nlls(logits[:, logits.shape[1] - width : -1], labels[:, 1:])
        for index, (total, count) in zip(rows, found, strict=True):
            nlls[index], counts[index] = total, count
    return nlls, counts


def labelled_nlls(logits: Any, labels: Any) -> list[tuple[float, int]]:
    """Per row, the summed negative log-likelihood of its labelled tokens (``labels[:, i]``
    predicted by ``logits[:, i]``; ``IGNORED`` not scored) and their count."""

    labels = labels.to(logits.device)
    # Only the labelled positions' logits go through the log-softmax: cross-entropy over a
    # (batch, vocabulary, positions) transpose of every position is 2-7x slower.
    scored = labels != IGNORED
    return kept_nlls(logits[scored], labels[scored], scored)


def kept_nlls(logits: Any, targets: Any, kept: Any) -> list[tuple[float, int]]:
    """Per row of the boolean ``kept`` (batch x positions), the summed negative log-likelihood
    of its ``targets`` and their count: ``logits`` and ``targets`` hold one row per kept
    position, in row-major order (what a boolean ``logits_to_keep`` gives)."""
    import torch

    nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    rows = kept.nonzero(as_tuple=True)[0]
    totals = torch.zeros(kept.shape[0], dtype=nll.dtype, device=nll.device)
    totals = totals.index_add_(0, rows, nll).tolist()
    return list(zip(totals, kept.sum(dim=1).tolist(), strict=True))


def soft_prompt_length(model: Any) -> int:
    """The virtual tokens a prompt-tuned PEFT model puts before the text (0 for any other)."""
    configs = getattr(model, "peft_config", None)
    config = configs.get(model.active_adapter) if isinstance(configs, dict) else None
    return config.num_virtual_tokens if getattr(config, "is_prompt_learning", False) else 0


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the model (under a PEFT wrapper, its base model) computes only the last positions'
    logits when asked (``logits_to_keep``), as transformers' causal language models do."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False
