"""TRL's fused LM head served on CPU from the labelled positions only: every field, the loss
and the gradients are TRL's own."""

from __future__ import annotations

import pytest
import torch
from support import build_tiny_model
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from llm_pipeline.training.answer_loss import (
    IGNORED,
    label_positions_head,
    next_token_labels,
    plain_lm_head,
)

FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def fused_model(folder):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    add_fused_lm_head(model, outputs=FIELDS)
    return model


@pytest.fixture
def models(tmp_path):
    """TRL's fused head, and the same weights with it served from labelled positions."""
    folder = build_tiny_model(tmp_path)
    theirs, ours = fused_model(folder), fused_model(folder)
    assert label_positions_head(ours)
    return theirs, ours


def batch(vocab: int) -> dict[str, torch.Tensor]:
    """Two rows of 12 tokens, labels only on an 'answer' span of each (different lengths)."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (2, 12), generator=generator)
    labels = torch.full_like(ids, IGNORED)
    labels[0, 6:10] = ids[0, 6:10]
    labels[1, 3:12] = ids[1, 3:12]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def gradients(model) -> list[torch.Tensor]:
    return [p.grad for p in model.parameters() if p.grad is not None]


def test_next_token_labels_shift_left_and_end_unlabelled():
    labels = torch.tensor([[IGNORED, 7, 8, IGNORED]])

    assert next_token_labels(labels).tolist() == [[7, 8, IGNORED, IGNORED]]


def test_every_field_the_loss_and_the_gradients_are_trls(models):
    theirs, ours = models
    inputs = batch(theirs.config.vocab_size)

    expected = theirs(**inputs, fused_lm_head=True)
    found = ours(**inputs, fused_lm_head=True)
    expected.loss.backward()
    found.loss.backward()

    assert found.label_mask.tolist() == expected.label_mask.tolist()
    assert found.label_mask.sum() == 4 + 9  # the labelled tokens 6-9 and 3-11
    for field in FIELDS:
        torch.testing.assert_close(getattr(found, field), getattr(expected, field))
    torch.testing.assert_close(found.loss, expected.loss)
    torch.testing.assert_close(found.loss, ours(**inputs).loss)  # the model's own loss
    assert len(gradients(ours)) == len(gradients(theirs)) > 0
    for mine, reference in zip(gradients(ours), gradients(theirs), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-6)


def test_a_given_token_count_divides_the_sum(models):
    _, ours = models
    inputs = batch(ours.config.vocab_size)

    mean = ours(**inputs, fused_lm_head=True)
    over_more = ours(**inputs, fused_lm_head=True, num_items_in_batch=4 * mean.label_mask.sum())

    assert over_more.loss.item() == pytest.approx(mean.loss.item() / 4, rel=1e-5)


def test_plain_calls_and_generation_are_the_models_own(models):
    theirs, ours = models
    inputs = batch(theirs.config.vocab_size)
    prompt = inputs["input_ids"][:1, :5]

    torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits)
    assert (
        ours.generate(prompt, max_new_tokens=4, do_sample=False).tolist()
        == theirs.generate(prompt, max_new_tokens=4, do_sample=False).tolist()
    )


def test_a_model_without_a_fused_head_or_with_scaled_logits_is_left_alone(tmp_path):
    folder = build_tiny_model(tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(folder)
    capped = fused_model(folder)
    capped.config.final_logit_softcapping = 30.0

    assert plain_lm_head(plain)
    assert not label_positions_head(plain)
    assert not plain_lm_head(capped)
    assert not label_positions_head(capped)
