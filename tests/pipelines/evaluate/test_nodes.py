"""Tests for the evaluate nodes: ROUGE-L, prompts, perplexity and generation on a tiny model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import RETRIEVAL_OFF, build_tiny_model, parameters_of

from llm_pipeline.datasets import Folder, ModelFolder
from llm_pipeline.pipelines.evaluate.nodes import (
    answers_and_reference_nlls,
    evaluate_models,
    generate_answers,
    inference_precision,
    measure_document_perplexity,
    prompt_messages,
    reference_nlls,
    reference_perplexity,
    report_metrics,
    rouge_l,
    score_model,
    score_prompt_variants,
    summarise_scores,
    validation_chats,
    with_system_prompt,
    words,
)
from llm_pipeline.training.models import load_causal_lm

NO_INDEX = Folder(Path("no-index"))


def chats(frame, include_context: bool = False) -> list:
    """The validation prompts as evaluate asks them, without retrieval."""
    return validation_chats(frame, NO_INDEX, include_context, RETRIEVAL_OFF)


PAIRS = [
    ("How long does the tent take to ship?", "The tent ships in 3 days."),
    ("What does the camping stove cost?", "The camping stove costs 45 euros."),
    ("Can I return my backpack?", "Yes, within two weeks."),
    ("Hi", "Hello, how can I help?"),
    ("Is the head lamp on sale?", "The head lamp is on sale for 20 euros."),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, tokenizer


def chat_prompt(tokenizer, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# --- words and ROUGE-L -------------------------------------------------------------------


def test_words_are_lower_case_and_split_on_punctuation():
    assert words("Where's my TENT? Café, 3 days!") == [
        "where",
        "s",
        "my",
        "tent",
        "café",
        "3",
        "days",
    ]


def test_rouge_l_of_identical_text_is_one():
    assert rouge_l("The tent ships in 3 days.", "The tent ships in 3 days.") == 1.0


def test_rouge_l_of_disjoint_text_is_zero():
    assert rouge_l("hello there", "tent ships tomorrow") == 0.0


def test_rouge_l_partial_match_is_the_f1_of_the_longest_common_subsequence():
    # LCS "the cat on the mat" = 5 words; precision 5/6, recall 5/5, F1 = 10/11.
    assert rouge_l("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)


def test_rouge_l_counts_a_subsequence_not_a_substring():
    # LCS "a c e" = 3 of 5 candidate and 3 of 3 reference words: F1 = 2 * 0.6 / 1.6 = 0.75.
    assert rouge_l("a b c d e", "a c e") == pytest.approx(0.75)


def test_rouge_l_ignores_case_and_punctuation():
    assert rouge_l("THE Tent, ships!", "the tent ships") == 1.0


@pytest.mark.parametrize("candidate, reference", [("", "the tent"), ("the tent", ""), ("?!", "?!")])
def test_rouge_l_without_words_is_zero(candidate, reference):
    assert rouge_l(candidate, reference) == 0.0


def test_rouge_l_is_symmetric():
    a, b = "the cat sat on the mat", "a cat on a mat today"
    assert rouge_l(a, b) == pytest.approx(rouge_l(b, a))


# --- prompt_messages ---------------------------------------------------------------------


def row(**overrides) -> dict:
    base = {
        "prompt": "And the boots?",
        "context": "Boots ship in 5 days.",
        "messages": [
            {"role": "user", "content": "Can I return my tent?"},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "And the boots?"},
        ],
    }
    return {**base, **overrides}


def test_prompt_messages_uses_the_conversation_when_present():
    example = row()

    assert prompt_messages(example, include_context=False) == example["messages"]


@pytest.mark.parametrize("messages", [[], None, float("nan")], ids=["empty", "none", "nan"])
def test_prompt_messages_falls_back_to_the_prompt(messages):
    assert prompt_messages(row(messages=messages), include_context=False) == [
        {"role": "user", "content": "And the boots?"}
    ]


def test_prompt_messages_adds_the_context_as_a_first_system_turn_when_asked():
    example = row()

    messages = prompt_messages(example, include_context=True)

    assert messages[0]["role"] == "system"
    assert "Boots ship in 5 days." in messages[0]["content"]
    assert messages[1:] == example["messages"]
    assert len(example["messages"]) == 3


@pytest.mark.parametrize("context", ["", None, float("nan")], ids=["empty", "none", "nan"])
def test_prompt_messages_adds_no_system_turn_without_context(context):
    messages = prompt_messages(row(context=context), include_context=True)

    assert [m["role"] for m in messages] == ["user", "assistant", "user"]


def test_prompt_messages_ignores_the_context_unless_asked():
    messages = prompt_messages(row(), include_context=False)

    assert all(m["role"] != "system" for m in messages)


# --- reference_perplexity and generate_answers on a real tiny model ---------------------


def test_reference_perplexity_is_finite_and_above_one(tiny):
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS]
    references = [r for _, r in PAIRS]

    perplexity = reference_perplexity(model, tokenizer, prompts, references, batch_size=2)

    assert math.isfinite(perplexity)
    assert perplexity > 1.0


def test_reference_perplexity_does_not_depend_on_padding(tiny):
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS]
    references = [r for _, r in PAIRS]

    one_by_one = reference_perplexity(model, tokenizer, prompts, references, batch_size=1)
    padded = reference_perplexity(model, tokenizer, prompts, references, batch_size=4)

    assert math.log(padded) == pytest.approx(math.log(one_by_one), abs=1e-4)


def test_reference_perplexity_scores_only_the_reference_tokens(tiny):
    import torch

    model, tokenizer = tiny
    prompt, reference = chat_prompt(tokenizer, PAIRS[0][0]), PAIRS[0][1]
    prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    # Token i is predicted from position i - 1; only the reference's tokens count.
    nll = [-log_probs[i - 1, ids[i]].item() for i in range(prompt_length, len(ids))]

    perplexity = reference_perplexity(model, tokenizer, [prompt], [reference], batch_size=1)

    assert perplexity == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)


def test_reference_perplexity_weights_examples_by_their_reference_tokens(tiny):
    """The figure is pooled over tokens, not an average of per-example perplexities."""
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS[:2]]
    references = ["Yes.", PAIRS[1][1] + " " + PAIRS[0][1]]
    counts, logs = [], []
    for prompt, reference in zip(prompts, references, strict=True):
        full = tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]
        counts.append(len(full) - len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        logs.append(math.log(reference_perplexity(model, tokenizer, [prompt], [reference], 1)))
    assert counts[0] < counts[1]

    pooled = reference_perplexity(model, tokenizer, prompts, references, batch_size=2)

    expected = (counts[0] * logs[0] + counts[1] * logs[1]) / sum(counts)
    assert math.log(pooled) == pytest.approx(expected, abs=1e-5)


def test_reference_perplexity_falls_after_training_on_the_reference(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = chat_prompt(tokenizer, "How long does the tent take to ship?")
    reference = "The tent ships in 3 days."
    before = reference_perplexity(model.eval(), tokenizer, [prompt], [reference], batch_size=1)

    ids = torch.tensor([tokenizer(prompt + reference, add_special_tokens=False)["input_ids"]])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    after = reference_perplexity(model.eval(), tokenizer, [prompt], [reference], batch_size=1)

    assert after < before / 2


def test_generate_answers_gives_one_string_per_prompt(tiny):
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS]

    answers = generate_answers(model, tokenizer, prompts, {"batch_size": 2, "max_new_tokens": 4})

    assert len(answers) == len(prompts)
    assert all(isinstance(answer, str) for answer in answers)
    assert any(answers)


def test_generate_answers_does_not_depend_on_batching(tiny):
    """Prompts of different lengths are padded on the left; padding must not change answers."""
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS]

    alone = generate_answers(model, tokenizer, prompts, {"batch_size": 1, "max_new_tokens": 6})
    batched = generate_answers(model, tokenizer, prompts, {"batch_size": 5, "max_new_tokens": 6})

    assert batched == alone


def test_generate_answers_of_no_prompts_is_empty(tiny):
    model, tokenizer = tiny

    assert generate_answers(model, tokenizer, [], {"batch_size": 4, "max_new_tokens": 4}) == []


@pytest.fixture(scope="module")
def sharp(tmp_path_factory):
    """A tiny model with large weights: its attention is sharp and tells positions apart, so a
    prompt's padding or a position off by one changes its answers and scores (the default tiny
    model attends almost evenly and would not notice)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path_factory.mktemp("sharp"), initializer_range=1.0)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(
        folder
    )


@pytest.mark.parametrize("batch_size", [1, 5])
def test_one_prefill_gives_the_answers_and_reference_scores_of_the_two_passes(sharp, batch_size):
    """score_model's one pass per batch (the prompt's cache serves the answer and the reference
    after it) answers and scores as generate_answers and reference_nlls do apart, also for
    prompts padded on the left in a batch."""
    model, tokenizer = sharp
    prompts = [chat_prompt(tokenizer, q) for q, _ in PAIRS]
    references = [r for _, r in PAIRS]
    params = {"batch_size": batch_size, "max_new_tokens": 6}

    answers, nlls, counts = answers_and_reference_nlls(
        model, tokenizer, prompts, references, params
    )

    assert answers == generate_answers(model, tokenizer, prompts, params)
    apart, apart_counts = reference_nlls(model, tokenizer, prompts, references, batch_size)
    assert counts == apart_counts and min(counts) > 0
    assert nlls == pytest.approx(apart, rel=1e-4)


# --- score_model and evaluate_models -----------------------------------------------------

JUDGED = {"groundedness", "relevance", "coherence", "fluency"}


def test_score_model_gives_per_example_scores_that_pool_to_the_perplexity(
    tiny_model_dir, validation_set, eval_params
):
    from transformers import AutoTokenizer

    folder = ModelFolder(tiny_model_dir)
    scores, answers = score_model(folder, validation_set, chats(validation_set), eval_params)

    assert set(scores) == {"perplexity", "rouge_l"}
    assert len(answers) == len(scores["rouge_l"]["values"]) == 3
    nlls, tokens = scores["perplexity"]["values"], scores["perplexity"]["tokens"]
    assert len(nlls) == len(tokens) == 3 and min(tokens) > 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = load_causal_lm(tiny_model_dir).eval()
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(row, False), tokenize=False, add_generation_prompt=True
        )
        for row in validation_set.to_dict(orient="records")
    ]
    with inference_precision():  # as score_model computes it
        pooled = reference_perplexity(
            model, tokenizer, prompts, list(validation_set["reference"]), 2
        )
    # score_model scores the reference on the prompt's cache: the same figure, but under bf16
    # autocast the prompt's keys and values come from other matrix shapes (2e-5 apart here).
    assert math.exp(sum(nlls) / sum(tokens)) == pytest.approx(pooled, rel=1e-4)
    assert scores["rouge_l"]["values"] == [
        rouge_l(a, r) for a, r in zip(answers, validation_set["reference"], strict=True)
    ]


def test_score_model_puts_the_context_in_the_prompt_only_when_asked(
    tiny_model_dir, validation_set, eval_params
):
    folder = ModelFolder(tiny_model_dir)
    without, _ = score_model(folder, validation_set, chats(validation_set, False), eval_params)
    again, _ = score_model(folder, validation_set, chats(validation_set, False), eval_params)
    with_context, _ = score_model(folder, validation_set, chats(validation_set, True), eval_params)

    assert again == without
    # Only the first example has a context.
    nll = "perplexity"
    assert with_context[nll]["values"][0] != pytest.approx(without[nll]["values"][0], rel=1e-6)
    # Batched with another prompt, the others may differ in float rounding only.
    assert with_context[nll]["values"][1:] == pytest.approx(without[nll]["values"][1:], rel=1e-3)


def test_a_system_prompt_comes_first_and_merges_with_an_existing_one():
    turns = [{"role": "user", "content": "Hi"}]
    system = [{"role": "system", "content": "Context"}, *turns]

    assert with_system_prompt(turns, None) == turns
    assert with_system_prompt(turns, "Be brief.")[0] == {"role": "system", "content": "Be brief."}
    merged = with_system_prompt(system, "Be brief.")
    assert merged == [{"role": "system", "content": "Be brief.\n\nContext"}, *turns]


@pytest.mark.slow
def test_evaluate_models_scores_each_model_and_the_champion_on_the_same_examples(
    tiny_model_dir, other_model_dir, validation_set, eval_params
):
    original = validation_set.copy(deep=True)

    scores, samples, answers = evaluate_models(
        validation_set,
        starting_model=None,
        pretrained_model=ModelFolder(tiny_model_dir),
        sft_model=ModelFolder(other_model_dir),
        aligned_model=ModelFolder(tiny_model_dir),
        champion_model=ModelFolder(other_model_dir),
        passage_index=NO_INDEX,
        params=eval_params,
        retrieval_params=RETRIEVAL_OFF,
    )

    assert set(scores) == {"base", "sft", "aligned", "champion"}
    for found in scores.values():
        assert set(found) == {"perplexity", "rouge_l", "similarity", "answer_accuracy"} | JUDGED
        assert set(found["answer_accuracy"]["values"]) <= {0.0, 1.0}
        assert len(found["similarity"]["values"]) == 3
        assert all(-1.0 <= v <= 1.0 + 1e-6 for v in found["similarity"]["values"])
        for metric in JUDGED:
            assert found[metric]["computed"] is False
            assert "no judge" in found[metric]["reason"]
    assert scores["aligned"] == scores["base"]
    assert scores["champion"] == scores["sft"]
    assert scores["sft"]["perplexity"] != scores["base"]["perplexity"]
    assert validation_set.equals(original)

    assert answers["sft"] == answers["champion"] and len(answers["base"]) == 3
    expected = ["id", "prompt", "reference", "base", "sft", "aligned", "champion"]
    assert list(samples.columns) == expected
    assert len(samples) == eval_params["samples_in_report"]
    assert samples["base"].tolist() == samples["aligned"].tolist()


@pytest.mark.slow
def test_without_a_champion_only_the_runs_models_are_scored(
    tiny_model_dir, validation_set, eval_params
):
    folder = ModelFolder(tiny_model_dir)
    params = {**eval_params, "samples_in_report": 50, "batch_size": 2}

    scores, samples, _ = evaluate_models(
        validation_set, None, folder, folder, folder, None, NO_INDEX, params, RETRIEVAL_OFF
    )

    assert set(scores) == {"base", "sft", "aligned"}
    assert samples["id"].tolist() == ["val-0001", "val-0002", "val-0003"]


@pytest.mark.slow
def test_a_starting_model_is_scored_as_shipped_and_as_adapted(
    tiny_model_dir, other_model_dir, validation_set, eval_params
):
    shipped, adapted = ModelFolder(other_model_dir), ModelFolder(tiny_model_dir)

    scores, _, _ = evaluate_models(
        validation_set,
        shipped,
        adapted,
        adapted,
        adapted,
        None,
        NO_INDEX,
        eval_params,
        RETRIEVAL_OFF,
    )

    assert list(scores) == ["base", "adapted", "sft", "aligned"]
    assert scores["base"]["perplexity"] != scores["adapted"]["perplexity"]
    assert scores["adapted"] == scores["sft"]


@pytest.mark.slow
def test_prompt_variants_are_scored_like_models(tiny_model_dir, validation_set, eval_params):
    params = {**eval_params, "prompt_variants": {"none": None, "brief": "Answer in one word."}}

    scores = score_prompt_variants(
        validation_set, ModelFolder(tiny_model_dir), NO_INDEX, params, RETRIEVAL_OFF
    )

    assert set(scores) == {"none", "brief"}
    assert scores["none"]["perplexity"] != scores["brief"]["perplexity"]
    assert (
        score_prompt_variants(
            validation_set, ModelFolder(tiny_model_dir), NO_INDEX, eval_params, RETRIEVAL_OFF
        )
        == {}
    )


# --- summarise_scores and report_metrics ---------------------------------------------------


def per_example(similarity: list[float], nll: float) -> dict:
    return {
        "perplexity": {"values": [nll] * len(similarity), "tokens": [4] * len(similarity)},
        "similarity": {"values": similarity},
        "fluency": {"computed": False, "reason": "no judge configured"},
    }


SUMMARY_PARAMS = parameters_of(
    "evaluate", bootstrap_resamples=500, seed=1, variant_metric="similarity"
)


def test_summary_gives_intervals_comparisons_and_the_best_variant():
    rng = np.random.default_rng(0)
    held = list(rng.uniform(0.2, 0.8, 40))
    models = {
        "base": per_example([v - 0.3 for v in held], 20.0),
        "sft": per_example(held, 10.0),
        "aligned": per_example([v + 0.1 for v in held], 9.0),
        "champion": per_example(held, 10.0),
    }
    variants = {
        "plain": per_example(held, 9.0),
        "brief": per_example([v + 0.05 for v in held], 9.0),
    }

    summary = summarise_scores(models, variants, SUMMARY_PARAMS)

    figure = summary["models"]["aligned"]["similarity"]
    assert figure["low"] < figure["value"] < figure["high"]
    assert figure["n"] == 40
    assert summary["models"]["sft"]["perplexity"]["value"] == pytest.approx(math.exp(10.0 / 4))
    assert summary["models"]["aligned"]["fluency"]["computed"] is False
    assert set(summary["comparisons"]) == {
        "sft_vs_base",
        "aligned_vs_base",
        "aligned_vs_sft",
        "sft_vs_champion",
        "aligned_vs_champion",
    }
    gain = summary["comparisons"]["aligned_vs_champion"]["similarity"]
    assert gain["difference"] == pytest.approx(0.1) and gain["better"] is True
    assert summary["comparisons"]["aligned_vs_champion"]["perplexity"]["better"] is True
    assert summary["comparisons"]["sft_vs_champion"]["similarity"]["significant"] is False
    assert summary["comparisons"]["aligned_vs_sft"]["fluency"]["computed"] is False
    assert summary["directions"]["perplexity"] is False
    assert summary["prompt_variants"]["best"] == "brief"


def test_report_metrics_writes_every_section_and_tracks_each_number_by_its_path():
    summary = summarise_scores(
        {"sft": per_example([0.2, 0.4, 0.6], 8.0), "aligned": per_example([0.3, 0.5, 0.7], 8.0)},
        {},
        SUMMARY_PARAMS,
    )
    evidence = {"method": "dpo", "aligned_preference_accuracy": 0.75, "missing": None}
    canary = {"exposure": 1.25, "regurgitated": False}

    retrieval = {"enabled": True, "recall_at_3": {"value": 0.9, "low": 0.8, "high": 1.0, "n": 9}}

    metrics, tracked = report_metrics(summary, evidence, canary, retrieval, {})

    assert metrics["aligned"] == summary["models"]["aligned"]
    assert metrics["alignment"] == evidence
    assert metrics["canary"] == canary
    assert metrics["comparisons"] == summary["comparisons"]
    assert tracked["aligned.similarity.value"]["value"] == pytest.approx(0.5)
    assert tracked["alignment.aligned_preference_accuracy"] == {"value": 0.75, "step": 0}
    assert tracked["canary.exposure"] == {"value": 1.25, "step": 0}
    assert tracked["canary.regurgitated"] == {"value": 0.0, "step": 0}
    assert metrics["retrieval"] == retrieval
    assert tracked["retrieval.recall_at_3.value"] == {"value": 0.9, "step": 0}
    assert "comparisons.aligned_vs_sft.similarity.difference" in tracked
    assert not [name for name in tracked if "fluency" in name or "missing" in name]


@pytest.mark.slow
def test_document_perplexity_is_measured_before_and_after_adaptation(
    tiny_model_dir, other_model_dir, eval_params
):
    documents = pd.DataFrame({"text": [" ".join(a for _, a in PAIRS) * 3, "The tent ships."]})
    shipped, adapted = ModelFolder(other_model_dir), ModelFolder(tiny_model_dir)

    found = measure_document_perplexity(documents, shipped, adapted, eval_params)
    alone = measure_document_perplexity(documents, None, adapted, eval_params)

    assert set(found) == {"base", "adapted", "adapted_vs_base"}
    assert found["base"]["value"] != found["adapted"]["value"]
    assert found["base"]["low"] <= found["base"]["value"] <= found["base"]["high"]
    difference = found["adapted_vs_base"]["difference"]
    assert difference == pytest.approx(found["adapted"]["value"] - found["base"]["value"])
    assert alone == {"base": found["adapted"]}
    assert measure_document_perplexity(documents.iloc[:0], None, adapted, eval_params) == {
        "computed": False,
        "reason": "no held-out documents (ingest.split)",
    }


def test_the_models_grown_from_the_judges_model_are_the_self_judged_ones(tmp_path):
    from support import build_tiny_model

    from llm_pipeline.pipelines.evaluate.nodes import EvaluationConfig, self_judged

    judge = build_tiny_model(tmp_path / "judge")
    other = build_tiny_model(tmp_path / "other", num_hidden_layers=2)
    models = {"base": ModelFolder(judge), "sft": ModelFolder(other)}
    params = parameters_of("evaluate", bootstrap_resamples=100, max_new_tokens=4, batch_size=2)

    def judged_by(judge_params):
        judge = parameters_of("evaluate.judge", **judge_params)
        return self_judged(models, EvaluationConfig.model_validate({**params, "judge": judge}))

    assert judged_by({"kind": "likelihood", "model": str(judge)}) == {"base"}
    assert judged_by({"kind": "none"}) == set()
