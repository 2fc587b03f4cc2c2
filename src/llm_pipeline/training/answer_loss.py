"""TRL's fused LM head on CPUs, projected only where there is a label.

TRL's SFTTrainer and DPOTrainer score tokens with a fused, chunked LM head
(``trl.trainer.utils.add_fused_lm_head``). On CUDA it projects only the positions that have a
label, through a Triton kernel; elsewhere it projects every position, in float32 matrix
products (``trl/kernels/chunked_logprob.py``), and again in the backward. With
``assistant_only_loss`` or a DPO completion mask most positions (the system turn, the
retrieved passages, the question) have no label. On this project's 2-core CPU with bf16 units
a SmolLM2-135M fine-tuning step took 1.4x as long as with the model's own loss.

``label_positions_head`` patches the model once more, after TRL: a ``fused_lm_head=True`` call
runs the model's own forward with transformers' boolean ``logits_to_keep``, so the LM head
projects only the positions whose next token is a label, under the same autocast as every
other layer, and returns TRL's ``FusedCausalLMOutput`` with the same fields. Calls go through
the (DDP-)wrapped model as before, so gradients synchronise as usual. ``bench/sft_step.py``
measures it against TRL's path.
"""

from __future__ import annotations

import functools
import inspect
import logging
import types
from typing import Any

logger = logging.getLogger(__name__)

IGNORED = -100


def next_token_labels(labels: Any) -> Any:
    """``labels`` shifted one to the left: position i holds the label of token i + 1 (the last
    position has none)."""
    following = labels.new_full(labels.shape, IGNORED)
    following[:, :-1] = labels[:, 1:]
    return following


def plain_lm_head(model: Any) -> bool:
    """Whether the LM head's logits are the log-probabilities' only input: no scaling or
    soft-capping in the config, and a forward that takes ``logits_to_keep``."""
    config = model.config.get_text_config()
    scaled = any(
        getattr(config, name, None) not in (None, 1, 1.0)
        for name in ("final_logit_softcapping", "logit_scale", "output_multiplier")
    ) or any(
        getattr(config, name, None) is not None for name in ("lm_head_multiplier", "logits_scaling")
    )
    return not scaled and "logits_to_keep" in inspect.signature(type(model).forward).parameters


def label_positions_head(model: Any) -> bool:
    """Serve ``model``'s fused-LM-head calls (TRL's, added before) by projecting labelled
    positions only; False, and nothing changed, where that does not apply (a GPU, a model
    whose logits are scaled, one without a fused head)."""
    import torch

    if torch.cuda.is_available() or not plain_lm_head(model):
        return False
    fused_forward = vars(model).get("forward")  # TRL's patch is an attribute of the instance
    if fused_forward is None or "fused_lm_head" not in fused_lm_head_parameters(fused_forward):
        return False

    @functools.wraps(type(model).forward)
    def forward(
        self,
        *args,
        fused_lm_head=False,
        labels=None,
        shift_labels=None,
        num_items_in_batch=None,
        **kwargs,
    ):
        if not fused_lm_head or shift_labels is not None or kwargs.get("output_router_logits"):
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        return labelled_positions_output(fused_forward, args, kwargs, labels, num_items_in_batch)

    model.forward = types.MethodType(forward, model)
    return True


def fused_lm_head_parameters(forward: Any) -> Any:
    """The parameters of a patched forward itself (``functools.wraps`` makes ``signature`` show
    the wrapped one's)."""
    return inspect.signature(forward, follow_wrapped=False).parameters


def labelled_positions_output(
    forward: Any, args: tuple, kwargs: dict, labels: Any, num_items_in_batch: Any
) -> Any:
    """TRL's ``FusedCausalLMOutput`` for ``labels``, from logits of the labelled positions only.

    Every per-token field has the shape ``(batch, seq_len - 1)`` and is zero where the label is
    ignored, as TRL's; ``log_probs`` and ``entropy`` carry gradients, ``mean_logits``,
    ``is_top1`` and ``log_sum_sq_probs`` do not.
    """
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    following = next_token_labels(labels)
    keep = following != IGNORED
    outputs = forward(*args, **{**kwargs, "use_cache": False, "logits_to_keep": keep})
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    log_softmax = torch.log_softmax(logits, dim=-1)
    targets = following[keep]
    picked = log_softmax.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    with torch.no_grad():
        mean_logits = logits.mean(-1)
        is_top1 = logits.argmax(-1) == targets
        log_sum_sq_probs = torch.logsumexp(2 * log_softmax, dim=-1)

    def spread(values: Any) -> Any:
        return torch.zeros(keep.shape, dtype=values.dtype, device=values.device).masked_scatter(
            keep, values
        )[:, :-1]

    log_probs = spread(picked)
    count = keep.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(
        loss=-log_probs.sum() / count,
        log_probs=log_probs,
        entropy=spread(entropy),
        log_sum_sq_probs=spread(log_sum_sq_probs),
        mean_logits=spread(mean_logits),
        is_top1=spread(is_top1),
        label_mask=keep[:, :-1],
        aux_loss=None,
    )


def use_label_positions_head(trainer: Any, stage: str) -> None:
    """After a TRL trainer added its fused LM heads: serve them with ``label_positions_head``
    (the trained model's, and the reference model's when the trainer has one), and log it."""
    from peft import PeftModel

    model = trainer.model
    if isinstance(model, PeftModel):
        if model.peft_config[model.active_adapter].is_prompt_learning:
            return  # a soft prompt shifts the positions: TRL's head handles that
        model = model.get_base_model()
    patched = label_positions_head(model)
    reference = getattr(getattr(trainer, "ref_model", None), "module", None) or getattr(
        trainer, "ref_model", None
    )
    if patched and reference is not None:
        label_positions_head(reference)
    if patched:
        logger.info("%s: the LM head projects labelled positions only (CPU)", stage)
