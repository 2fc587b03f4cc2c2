"""RLHF: the rule rewards, the RL job's checks, and GRPO/RLOO as real torchrun jobs on a tiny
model scored by a tiny reward model: they log reward, KL and length, move weights, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import ValidationError
from support import (
    CHECKPOINT_EVERY_2_STEPS,
    assert_resumes_after_losing_its_last_checkpoint,
    build_tiny_model,
    launch_config,
    saved_weights,
)

from llm_pipeline.settings import CONFIG_LOADER_ARGS
from llm_pipeline.training.launch import launch
from llm_pipeline.training.rewards import (
    ForbiddenRule,
    FormatRule,
    LengthRule,
    RuleRewards,
    completion_text,
    forbidden_reward,
    format_reward,
    length_reward,
    rule_reward_functions,
)
from llm_pipeline.training.rl import RLJob, read_prompts, refuse_soft_prompt, rl_arguments

CONF = Path(__file__).resolve().parents[2] / "conf"
# Eight prompts, two a step: the four steps of a job are one epoch.
PROMPTS = [
    "How long does the tent take to ship?",
    "What does the camping stove cost?",
    "Can I return my backpack?",
    "Is the head lamp on sale?",
    "Do the hiking boots come in size 44?",
    "When does the rain jacket arrive?",
    "Can I pay for the tent in two parts?",
    "Hello, how can I help?",
]


# --- rule rewards ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("one two three", 0.0),  # inside [2, 4]
        ("one", -0.25),  # one word short of 2, relative to max_words 4
        ("one two three four five six", -0.5),  # two words over
        ("", -0.5),
        (" ".join(["word"] * 40), -1.0),  # floored at -1
    ],
)
def test_the_length_reward_is_zero_inside_the_range_and_falls_outside(text, expected):
    assert length_reward(text, LengthRule(min_words=2, max_words=4)) == pytest.approx(expected)


def test_the_format_reward_is_one_when_the_pattern_is_found():
    rule = FormatRule(pattern=r"^(Hi|Hello)\b")
    assert format_reward("Hi Nora! Your order ships today.", rule) == 1.0
    assert format_reward("Your order ships today. Hi!", rule) == 0.0


def test_the_forbidden_reward_matches_whole_words_and_phrases_in_any_case():
    rule = ForbiddenRule(words=["not my department", "idiot"])
    assert forbidden_reward("That is NOT my department, sorry.", rule) == -1.0
    assert forbidden_reward("Don't be an idiot.", rule) == -1.0
    assert forbidden_reward("Idiotically cheap tents!", rule) == 0.0
    assert forbidden_reward("The tent ships in 3 days.", rule) == 0.0


def test_rules_that_cannot_work_are_refused_with_their_key():
    with pytest.raises(ValidationError, match="min_words"):
        LengthRule(min_words=10, max_words=5)
    with pytest.raises(ValidationError, match="not a regular expression"):
        FormatRule(pattern="(unclosed")
    with pytest.raises(ValidationError, match="blank entry"):
        ForbiddenRule(words=["fine", " "])
    with pytest.raises(ValidationError, match="extra"):
        RuleRewards.model_validate({"lenght": {"max_words": 3}})


def test_only_the_rules_that_are_on_become_reward_functions_with_their_weights():
    rules = RuleRewards(
        length=LengthRule(max_words=3, weight=0.5), forbidden=ForbiddenRule(words=["no"])
    )
    functions = rule_reward_functions(rules)
    assert [(f.__name__, w) for f, w in functions] == [("length", 0.5), ("forbidden_content", 1.0)]
    completions = [[{"role": "assistant", "content": "No way."}], "Sure, three days."]
    length, forbidden = (function for function, _ in functions)
    assert length(prompts=[None, None], completions=completions) == [0.0, 0.0]
    assert forbidden(prompts=[None, None], completions=completions) == [-1.0, 0.0]
    assert rule_reward_functions(RuleRewards()) == []


def test_a_completion_is_read_from_text_or_chat_turns():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "turn"}]) == "turn"


# --- the job's checks -----------------------------------------------------------------------


def job(**fields) -> RLJob:
    base = {
        "train_file": "prefs.jsonl",
        "model_dir": "sft",
        "reward_model_dir": "rm",
        "output_dir": "out",
        "checkpoint_dir": "ckpt",
    }
    return RLJob.model_validate({**base, **fields})


def test_the_kl_penalty_cannot_be_switched_off():
    from trl import GRPOConfig, RLOOConfig

    with pytest.raises(ValueError, match=r"rl.grpo.beta is 0.0: it must be above 0"):
        rl_arguments(job(grpo={"beta": 0.0}), GRPOConfig, [1.0])
    # GRPO's own default is 0, RLOO's 0.05: the job insists on a penalty either way.
    with pytest.raises(ValueError, match=r"rl\.grpo\.beta is 0\.0"):
        rl_arguments(job(), GRPOConfig, [1.0])
    fields = rl_arguments(job(algorithm="rloo"), RLOOConfig, [1.0, 0.5])
    assert fields["reward_weights"] == [1.0, 0.5]


def test_reward_weights_and_unknown_keys_are_refused():
    from trl import GRPOConfig

    with pytest.raises(ValueError, match=r"Remove 'rl\.grpo\.reward_weights'"):
        rl_arguments(job(grpo={"beta": 0.1, "reward_weights": [1.0]}), GRPOConfig, [1.0])
    with pytest.raises(ValueError, match=r"Unknown keys under 'rl.grpo': \['bta'\]"):
        rl_arguments(job(grpo={"bta": 0.1}), GRPOConfig, [1.0])


def test_a_soft_prompt_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"soft prompt.*align\.method: dpo"):
        refuse_soft_prompt(tmp_path)


def test_prompts_are_read_once_each_as_chat_turns(tmp_path):
    pairs = [{"prompt": p, "chosen": "a", "rejected": "b"} for p in PROMPTS + PROMPTS[:1]]
    path = write_jsonl(tmp_path / "prefs.jsonl", pairs)
    prompts = read_prompts(path)
    assert prompts["prompt"] == [[{"role": "user", "content": p}] for p in PROMPTS]


@pytest.mark.parametrize("env", ["local", "tiny"])
def test_the_rl_parameters_are_valid_trainer_configs(env, tmp_path):
    from trl import GRPOConfig, RLOOConfig

    loader = OmegaConfigLoader(str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    align = loader["parameters"]["align"]
    assert align["method"] in {"dpo", "rlhf"}
    rl = align["rl"]
    rules = rule_reward_functions(RuleRewards.model_validate(rl["rules"]))
    for algorithm, config_class in {"grpo": GRPOConfig, "rloo": RLOOConfig}.items():
        weights = [rl["reward_model_weight"], *(weight for _, weight in rules)]
        fields = rl_arguments(
            job(algorithm=algorithm, **{algorithm: rl[algorithm]}), config_class, weights
        )
        config = config_class(output_dir=str(tmp_path), **fields)
        assert config.beta > 0


# --- real torchrun jobs ---------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def build_reward_model(source: Path, folder: Path) -> Path:
    """A scoring head on the tiny model, saved as the reward stage saves one."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def rl_inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rl")
    policy = build_tiny_model(root / "sft")
    pairs = [{"prompt": p, "chosen": "Yes.", "rejected": "No."} for p in PROMPTS]
    return {
        "root": root,
        "model_dir": policy,
        "reward_model_dir": build_reward_model(policy, root / "reward_model"),
        "train_file": write_jsonl(root / "prefs.jsonl", pairs),
    }


def rl_job(inputs: dict, name: str, algorithm: str = "grpo", **trainer) -> dict:
    settings = {
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 8,
        "learning_rate": 1e-2,
        "beta": 0.1,
        "logging_steps": 1,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "seed": 3,
        "disable_tqdm": True,
        **trainer,
    }
    return {
        "train_file": inputs["train_file"],
        "model_dir": inputs["model_dir"],
        "reward_model_dir": inputs["reward_model_dir"],
        "output_dir": inputs["root"] / name,
        "checkpoint_dir": inputs["root"] / f"{name}-checkpoints",
        "algorithm": algorithm,
        "rules": {"length": {"min_words": 1, "max_words": 3, "weight": 0.5}},
        algorithm: settings,
    }


@pytest.fixture(scope="module")
def grpo_run(rl_inputs) -> dict:
    """The GRPO job run whole, with a checkpoint at steps 2 and 4: the resume test starts from
    a copy of its checkpoints instead of running it again."""
    spec = rl_job(rl_inputs, "grpo", **CHECKPOINT_EVERY_2_STEPS)
    launch("llm_pipeline.training.rl", spec, launch_config(), rl_inputs["root"] / "jobs")
    return spec


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_rl_logs_reward_kl_and_length_at_every_step_and_moves_weights(
    rl_inputs, algorithm, request
):
    if algorithm == "grpo":
        spec = request.getfixturevalue("grpo_run")
    else:
        spec = rl_job(rl_inputs, algorithm, algorithm)
        launch("llm_pipeline.training.rl", spec, launch_config(), rl_inputs["root"] / "jobs")

    output = spec["output_dir"]
    history = json.loads((output / "training_log.json").read_text())
    steps = [entry for entry in history if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4]
    for entry in steps:
        assert {"kl", "completions/mean_length", "rewards/reward_model/mean"} <= set(entry)
        assert "rewards/length/mean" in entry
        assert 0 < entry["completions/mean_length"] <= 8
    # The policy drifts from its frozen reference, and the KL term measures by how much.
    assert steps[-1]["kl"] > 0
    before, after = saved_weights(rl_inputs["model_dir"]), saved_weights(output)
    assert any(not before[name].equal(after[name]) for name in before)
    assert (output / "tokenizer.json").exists()
    assert f"{algorithm}:" in (output / "llm_pipeline_config.yaml").read_text()


@pytest.mark.slow
def test_an_interrupted_rl_run_resumes_from_its_last_complete_checkpoint(
    rl_inputs, grpo_run, caplog
):
    """Step 4's checkpoint is removed as if the run had been killed before it completed: the
    re-run resumes at step 2 and ends with the weights of the uninterrupted run.

    Within an epoch, that is: TRL's prompt sampler seeds its shuffling once, so a run resumed in
    a later epoch draws that epoch's prompts in another order."""
    spec = rl_job(rl_inputs, "resumed", **CHECKPOINT_EVERY_2_STEPS)
    assert_resumes_after_losing_its_last_checkpoint(
        "llm_pipeline.training.rl", spec, rl_inputs["root"] / "jobs", caplog, finished=grpo_run
    )


@pytest.mark.slow
def test_rl_with_lora_moves_only_the_adapted_weights_against_the_model_without_them(rl_inputs):
    spec = rl_job(rl_inputs, "lora", learning_rate=5e-2)
    spec["lora"] = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    launch("llm_pipeline.training.rl", spec, launch_config(), rl_inputs["root"] / "jobs")

    history = json.loads((spec["output_dir"] / "training_log.json").read_text())
    kl = [entry["kl"] for entry in history if "kl" in entry]
    # The reference is the policy without its adapters: equal at first, apart once they learn.
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[-1] > 0
    assert not (spec["output_dir"] / "adapter_config.json").exists()
    before, after = saved_weights(rl_inputs["model_dir"]), saved_weights(spec["output_dir"])
    changed = {name for name in before if not before[name].equal(after[name])}
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)
