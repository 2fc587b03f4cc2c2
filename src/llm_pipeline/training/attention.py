"""Padding-free attention where flash attention is not there: one causal SDPA call per sequence.

A padding-free batch is one row of whole conversations, told apart by ``position_ids`` that
restart at 0; TRL's collator also hands the model their boundaries as ``cu_seq_lens_q``. Flash
attention uses those to attend within each conversation. PyTorch's SDPA (CPU, and GPUs without
flash attention) instead gets a block-diagonal mask over the whole row: it computes the scores
of every token against every other token of the row and throws most away, so a row of 2,048
tokens costs 16 times the attention of four rows of 512. ``packed_sdpa`` attends within each
sequence with ``is_causal`` (the fast kernel, no mask): the same result, at the cost of the
sequences alone. Any other batch (padded, or generation with a cache) goes to SDPA unchanged.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

PACKED_SDPA = "packed_sdpa"


def packed_sdpa_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention of a padding-free row, sequence by sequence; SDPA as usual otherwise."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    boundaries = kwargs.get("cu_seq_lens_q")
    if boundaries is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    cuts = boundaries.tolist()
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout,
            scale=scaling,
            is_causal=end - start > 1,
        )
        for start, end in pairwise(cuts)
        if end > start
    ]
    # (batch, heads, tokens, head_dim) -> (batch, tokens, heads, head_dim), as SDPA's wrapper does.
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def use_packed_sdpa(model: Any) -> None:
    """Switch ``model`` from SDPA to ``packed_sdpa``; other kernels (flash attention) stay.

    The choice lives on the loaded model only: a saved folder does not record it.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return
    AttentionInterface.register(PACKED_SDPA, packed_sdpa_forward)
    # Padded batches and generation still need SDPA's masks.
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_SDPA, sdpa_mask)
    model.set_attn_implementation(PACKED_SDPA)
