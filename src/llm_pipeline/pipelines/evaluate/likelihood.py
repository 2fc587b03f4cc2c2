"""Log-likelihoods of labelled tokens, the one scoring pass behind reference perplexity, document
perplexity, preference log-probabilities, the likelihood judge and the canary.

Two things make it cheaper than a plain ``model(...).logits`` over the batch, with the same
figures: sequences are batched in order of length (less padding), and the language-model head
runs only from the first labelled position of the batch on (``logits_to_keep``), not over the
prompt, which is most of every grounded sequence: 49,152 vocabulary logits per prompt token
cost about a fifth of SmolLM2-135M's forward pass and more in the log-softmax after it.
"""

from __future__ import annotations

import inspect
from typing import Any

IGNORED = -100


def summed_nlls(
    model: Any, sequences: list[tuple[list[int], list[int]]], pad: int | None, batch_size: int
) -> tuple[list[float], list[int]]:
    """Per (token ids, labels) sequence, the summed negative log-likelihood of its labelled
    tokens (``IGNORED``: not scored; token i is predicted at position i - 1, so position 0 is
    never scored) and their count, in the order given."""
    import torch

    from llm_pipeline.training.jobs import batches_by_length

    filler = 0 if pad is None else pad
    # Where the model's first weights are (the inputs' device under device_map="auto").
    device = next(model.parameters()).device
    keeps = accepts_logits_to_keep(model)
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
        # The first token any row scores; its prediction is at the position before it.
        first = max(1, min((_first_labelled(lab) for _, lab in batch), default=1))
        with torch.no_grad():
            if keeps:
                logits = model(
                    input_ids=input_ids, attention_mask=attention, logits_to_keep=width - first + 1
                ).logits[:, :-1]
            else:
                # A prompt-tuned model puts its soft prompt's positions first: keep the text's.
                logits = model(input_ids=input_ids, attention_mask=attention).logits
                logits = logits[:, logits.shape[1] - width + first - 1 : -1]
        for index, (total, count) in zip(
            rows, labelled_nlls(logits, labels[:, first:]), strict=True
        ):
            nlls[index], counts[index] = total, count
    return nlls, counts


def labelled_nlls(logits: Any, labels: Any) -> list[tuple[float, int]]:
    """Per row, the summed negative log-likelihood of its labelled tokens (``labels[:, i]``
    predicted by ``logits[:, i]``; ``IGNORED`` not scored) and their count."""
    import torch

    labels = labels.to(logits.device)
    # Only the labelled positions' logits go through the log-softmax, in fp32: the padding and
    # prompt positions inside the kept window cost as much as scored ones, and cross-entropy
    # over a (batch, vocabulary, positions) transpose is 2-7x slower than over gathered rows.
    scored = labels != IGNORED
    nll = torch.nn.functional.cross_entropy(
        logits[scored].float(), labels[scored], reduction="none"
    )
    rows = scored.nonzero(as_tuple=True)[0]
    totals = torch.zeros(labels.shape[0], dtype=nll.dtype, device=nll.device)
    totals = totals.index_add_(0, rows, nll).tolist()
    return list(zip(totals, scored.sum(dim=1).tolist(), strict=True))


def _first_labelled(labels: list[int]) -> int:
    """The index of the first scored label (the length when there is none)."""
    return next((index for index, label in enumerate(labels) if label != IGNORED), len(labels))


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the model (under a PEFT wrapper, its base model) computes only the last positions'
    logits when asked (``logits_to_keep``), as transformers' causal language models do."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False
