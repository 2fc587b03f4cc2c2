"""The shared scoring pass: the same figures as a plain full-logits loop, in the order given,
whatever the batching, for plain, prompt-tuned and logits_to_keep-less models."""

import pytest

from llm_pipeline.pipelines.evaluate.likelihood import IGNORED, accepts_logits_to_keep, summed_nlls
from tests.support import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny"), num_hidden_layers=2)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(
        folder
    )


def sequences_of(tokenizer) -> list[tuple[list[int], list[int]]]:
    """Prompts of different lengths with their answers labelled, one scored from its second
    token, one with nothing scored: lengths out of order, so that batching sorts them."""
    found = []
    for prompt, answer in [
        ("Can I return my tent after 5 days?", " The tent can be returned within two weeks."),
        ("Hello", " Hello, how can I help?"),
        ("The rain jacket costs 45 euros. Can I return my backpack after 3 days?", " Yes."),
        ("Thank you", " Thank you for shopping with us!"),
    ]:
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = head + tokenizer(answer, add_special_tokens=False)["input_ids"]
        found.append((ids, [IGNORED] * len(head) + ids[len(head) :]))
    whole = tokenizer("The tent costs 20 euros.", add_special_tokens=False)["input_ids"]
    found.append((whole, list(whole)))
    found.append((whole, [IGNORED] * len(whole)))
    return found


def plain_nlls(model, sequences) -> tuple[list[float], list[int]]:
    """One sequence at a time, every position's logits, as a reader would write it."""
    import torch

    nlls, counts = [], []
    for ids, labels in sequences:
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        scored = [i for i in range(1, len(ids)) if labels[i] != IGNORED]
        nlls.append(-sum(log_probs[i - 1, labels[i]].item() for i in scored))
        counts.append(len(scored))
    return nlls, counts


@pytest.mark.parametrize("batch_size", [1, 2, 4, 16])
def test_equals_the_plain_loop_in_the_order_given(tiny, batch_size):
    model, tokenizer = tiny
    sequences = sequences_of(tokenizer)
    expected, expected_counts = plain_nlls(model, sequences)

    nlls, counts = summed_nlls(model, sequences, tokenizer.pad_token_id, batch_size)

    assert counts == expected_counts
    assert counts[-1] == 0 and nlls[-1] == 0.0
    assert nlls == pytest.approx(expected, abs=1e-4)


def test_models_without_logits_to_keep_score_the_same(tiny):
    import torch

    model, tokenizer = tiny

    class Plain(torch.nn.Module):
        """A causal LM whose forward knows nothing of logits_to_keep."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    sequences = sequences_of(tokenizer)
    wrapped = Plain(model)
    assert accepts_logits_to_keep(model) and not accepts_logits_to_keep(wrapped)

    nlls, counts = summed_nlls(wrapped, sequences, tokenizer.pad_token_id, 3)
    expected, expected_counts = summed_nlls(model, sequences, tokenizer.pad_token_id, 3)
    assert counts == expected_counts
    assert nlls == pytest.approx(expected, abs=1e-4)


def test_a_prompt_tuned_model_scores_its_text_positions(tiny):
    """The soft prompt's positions come first in the logits: both ways of scoring keep only
    the text's, and agree with the full logits read past the virtual tokens."""
    import copy

    import torch
    from peft import PromptTuningConfig, get_peft_model

    model, tokenizer = tiny
    torch.manual_seed(0)
    tuned = get_peft_model(
        copy.deepcopy(model), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)
    ).eval()
    sequences = sequences_of(tokenizer)[:4]
    expected = []
    for ids, labels in sequences:
        with torch.no_grad():
            logits = tuned(input_ids=torch.tensor([ids])).logits[0, 3:].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        expected.append(
            -sum(log_probs[i - 1, labels[i]].item() for i in range(1, len(ids)) if labels[i] >= 0)
        )

    assert accepts_logits_to_keep(tuned)
    nlls, _ = summed_nlls(tuned, sequences, tokenizer.pad_token_id, 2)
    assert nlls == pytest.approx(expected, abs=1e-4)
