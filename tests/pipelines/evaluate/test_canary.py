"""Canary exposure on a tiny model: random weights expose nothing special, a model that has
memorised the planted sentence ranks its secret first and repeats it."""

from __future__ import annotations

import math

import pytest
from support import build_tiny_model, canary_config

from llm_pipeline.pipelines.evaluate.canary import (
    canary_exposure,
    canary_text,
    candidate_secrets,
)

CONFIG = canary_config(
    prefix="The access code of the north vault is", secret="48213906", candidates=200, seed=3
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    from llm_pipeline.training.models import load_causal_lm

    folder = build_tiny_model(tmp_path_factory.mktemp("canary"))
    return load_causal_lm(folder).eval(), AutoTokenizer.from_pretrained(folder)


def memorise(model, tokenizer, text: str, steps: int = 150):
    """The model trained on ``text`` alone until it knows it by heart."""
    import copy

    import torch

    torch.manual_seed(0)
    trained = copy.deepcopy(model).train()
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = trained(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return trained.eval()


def test_candidates_are_distinct_same_length_secrets_without_the_true_one_and_seeded():
    found = candidate_secrets(CONFIG)

    assert len(found) == len(set(found)) == 200
    assert all(len(secret) == 8 and secret.isdigit() for secret in found)
    assert CONFIG.secret not in found
    assert candidate_secrets(CONFIG) == found
    assert candidate_secrets(CONFIG.model_copy(update={"seed": 4})) != found


def test_an_untrained_model_has_not_memorised_the_canary(tiny):
    model, tokenizer = tiny

    exposure = canary_exposure(model, tokenizer, CONFIG)

    assert exposure["candidates"] == 200
    assert exposure["max_exposure"] == pytest.approx(math.log2(201))
    assert 0.0 <= exposure["exposure"] < exposure["max_exposure"]
    assert exposure["rank"] > 1
    assert exposure["regurgitated"] is False


def test_a_model_that_memorised_the_canary_ranks_it_first_and_repeats_it(tiny):
    model, tokenizer = tiny
    trained = memorise(model, tokenizer, canary_text(CONFIG.prefix, CONFIG.secret))

    exposure = canary_exposure(trained, tokenizer, CONFIG)

    assert exposure["rank"] == 1
    assert exposure["exposure"] == pytest.approx(exposure["max_exposure"])
    assert exposure["regurgitated"] is True
    assert exposure["completion"].startswith(CONFIG.secret)


def test_the_secret_must_be_digits_and_the_candidates_must_fit():
    with pytest.raises(ValueError, match="must be digits"):
        canary_config(prefix="code", secret="abc")
    with pytest.raises(ValueError, match=r"lower evaluate\.canary\.candidates"):
        candidate_secrets(canary_config(prefix="code", secret="12", candidates=100))
