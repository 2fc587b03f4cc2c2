"""The alignment evidence: log-likelihood ranking of held-out pairs, implicit reward, reward model
score, computed the same way for the fine-tuned and the aligned model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import RETRIEVAL_OFF, parameters_of

from llm_pipeline.datasets import Folder, ModelFolder
from llm_pipeline.pipelines.evaluate.nodes import (
    alignment_beta,
    answer_log_likelihoods,
    fraction_above,
    measure_alignment,
)

PAIRS = pd.DataFrame(
    [
        {
            "prompt": "How long does the tent take to ship?",
            "chosen": "The tent ships in 3 days.",
            "rejected": "No idea, check the website.",
        },
        {
            "prompt": "What does the camping stove cost?",
            "chosen": "The camping stove costs 45 euros.",
            "rejected": "Look it up yourself.",
        },
        {
            "prompt": "Can I return my backpack?",
            "chosen": "Yes, the backpack can be returned within two weeks.",
            "rejected": "Not my department.",
        },
    ]
)
VALIDATION = pd.DataFrame(
    {
        "prompt": ["Does the tent come with pegs?", "Is the stove allowed on planes?"],
        "reference": ["Yes, twelve pegs.", "No, not with fuel."],
        "context": ["The tent comes with twelve pegs.", None],
        "messages": [None, None],
    }
)
NO_INDEX = Folder(Path("no-index"))
# Both models' answers to VALIDATION, as evaluate_models hands them on.
ANSWERS = {"sft": ["Twelve pegs.", "No."], "aligned": ["Twelve pegs.", "No."]}
PARAMS = parameters_of(
    "evaluate", max_new_tokens=6, batch_size=2, seed=0, include_context=True, prompt_variants={}
)


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a one-output scoring head, as the reward stage saves it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("reward_model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "reward_metrics.json").write_text(json.dumps({"heldout_accuracy": 0.75}))
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(
        tiny_model_dir
    ).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def trained_towards_chosen(source: Path, target: Path, steps: int = 30) -> ModelFolder:
    """A copy of ``source`` trained a little on the chosen answers (a crude alignment)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(source, target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    texts = [
        tokenizer.apply_chat_template(
            [*user(row.prompt), {"role": "assistant", "content": row.chosen}], tokenize=False
        )
        for row in PAIRS.itertuples()
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(target)
    run_config = {"dpo": {"beta": 0.25}}
    (target / "llm_pipeline_config.yaml").write_text(yaml.safe_dump(run_config))
    return ModelFolder(target)


# --- pieces ---------------------------------------------------------------------------------


def test_fraction_above_counts_only_strict_wins():
    assert fraction_above([2.0, 1.0, 0.5, 3.0], [1.0, 1.0, 0.7, 2.0]) == 0.5


def test_answer_log_likelihood_is_the_sum_over_the_answer_tokens(tiny):
    import torch

    model, tokenizer = tiny
    prompt, answer = user("Can I return my tent?"), "Yes, within two weeks."
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]
    turns = [*prompt, {"role": "assistant", "content": answer}]
    ids = tokenizer.apply_chat_template(turns)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    expected = sum(log_probs[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))

    (found,) = answer_log_likelihoods(model, tokenizer, [prompt], [answer], batch_size=1)

    assert found == pytest.approx(expected, rel=1e-5)


def test_answer_log_likelihoods_do_not_depend_on_padding(tiny):
    model, tokenizer = tiny
    prompts = [user(p) for p in PAIRS["prompt"]]
    answers = list(PAIRS["chosen"])

    alone = answer_log_likelihoods(model, tokenizer, prompts, answers, batch_size=1)
    padded = answer_log_likelihoods(model, tokenizer, prompts, answers, batch_size=3)

    assert padded == pytest.approx(alone, abs=1e-4)


def test_the_kl_coefficient_comes_from_the_aligned_models_own_config(tmp_path):
    def folder_with(config: dict) -> ModelFolder:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        (folder / "llm_pipeline_config.yaml").write_text(yaml.safe_dump(config))
        return ModelFolder(folder)

    assert alignment_beta(folder_with({"dpo": {"beta": 0.3}})) == 0.3
    assert alignment_beta(folder_with({"algorithm": "rloo", "rloo": {"beta": 0.02}})) == 0.02
    assert alignment_beta(folder_with({"algorithm": "grpo", "grpo": {}})) == 0.1


# --- measure_alignment ----------------------------------------------------------------------


def test_a_model_compared_with_itself_shows_no_gain(tiny_model_dir, reward_model_dir):
    same = ModelFolder(tiny_model_dir)

    evidence = measure_alignment(
        PAIRS,
        VALIDATION,
        ANSWERS,
        same,
        same,
        ModelFolder(reward_model_dir),
        NO_INDEX,
        PARAMS,
        RETRIEVAL_OFF,
    )

    assert evidence["heldout_pairs"] == 3
    assert evidence["aligned_preference_accuracy"] == evidence["sft_preference_accuracy"]
    # Every implicit reward is beta * 0: no chosen answer is rewarded above its rejected one.
    assert evidence["implicit_reward_accuracy"] == 0.0
    assert evidence["implicit_reward_margin"] == 0.0
    assert evidence["aligned_reward_model_score"] == evidence["sft_reward_model_score"]
    for gain in ("preference_accuracy_gain", "reward_model_score_gain"):
        assert evidence[gain]["difference"] == 0.0 and evidence[gain]["significant"] is False
    assert evidence["reward_model_heldout_accuracy"] == 0.75
    assert evidence["method"] == "dpo"


def test_a_model_trained_towards_the_chosen_answers_ranks_them_first_more_often(
    tiny_model_dir, reward_model_dir, tmp_path
):
    aligned = trained_towards_chosen(tiny_model_dir, tmp_path / "aligned")

    evidence = measure_alignment(
        PAIRS,
        VALIDATION,
        ANSWERS,
        ModelFolder(tiny_model_dir),
        aligned,
        ModelFolder(reward_model_dir),
        NO_INDEX,
        PARAMS,
        RETRIEVAL_OFF,
    )

    assert evidence["sft_preference_accuracy"] < 1.0
    assert evidence["aligned_preference_accuracy"] == 1.0
    assert evidence["implicit_reward_accuracy"] == 1.0
    assert evidence["implicit_reward_margin"] > 0
    gain = evidence["preference_accuracy_gain"]
    assert gain["difference"] == pytest.approx(1.0 - evidence["sft_preference_accuracy"])
    assert gain["n"] == 3 and gain["low"] <= gain["difference"] <= gain["high"]
    assert evidence["implicit_reward_interval"]["value"] == 1.0
    assert evidence["beta"] == 0.25
    # The reward model scores answers to the validation set's prompts.
    assert evidence["validation_prompts"] == 2


def test_without_a_reward_model_its_figures_say_why_and_the_rest_is_measured(
    tiny_model_dir, tmp_path
):
    same = ModelFolder(tiny_model_dir)
    reason = "align.method is dpo, which needs no reward model"
    none = ModelFolder.untrained(tmp_path / "reward_model", reason)

    evidence = measure_alignment(
        PAIRS, VALIDATION, ANSWERS, same, same, none, NO_INDEX, PARAMS, RETRIEVAL_OFF
    )

    assert evidence["reward_model_score_gain"] == {
        "computed": False,
        "reason": f"no reward model: {reason}",
    }
    for name in (
        "sft_reward_model_score",
        "aligned_reward_model_score",
        "reward_model_heldout_accuracy",
    ):
        assert evidence[name] is None, name
    assert evidence["implicit_reward_accuracy"] == 0.0
    assert evidence["preference_accuracy_gain"]["difference"] == 0.0


def test_no_held_out_pairs_is_refused_with_what_to_do(tiny_model_dir, reward_model_dir):
    same = ModelFolder(tiny_model_dir)
    with pytest.raises(ValueError, match="validated_preferences_validation is empty"):
        measure_alignment(
            PAIRS.iloc[:0],
            VALIDATION,
            ANSWERS,
            same,
            same,
            ModelFolder(reward_model_dir),
            NO_INDEX,
            PARAMS,
            RETRIEVAL_OFF,
        )
