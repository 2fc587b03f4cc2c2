"""Every parameters file loads into the config classes that are its schema, in every environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from llm_pipeline.pipelines.evaluate.canary import CanaryConfig
from llm_pipeline.pipelines.evaluate.judge import JudgeConfig
from llm_pipeline.pipelines.evaluate.nodes import DIRECTIONS, EvaluationConfig
from llm_pipeline.pipelines.register.nodes import RegisterConfig
from llm_pipeline.settings import CONFIG_LOADER_ARGS
from llm_pipeline.tools.sample_data import CANARY_PREFIX, CANARY_SECRET
from llm_pipeline.training.jobs import checked_fields
from llm_pipeline.training.launch import LaunchConfig
from llm_pipeline.training.tokenizer import TokenizerConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


def parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    return loader["parameters"]


@pytest.mark.parametrize("env", ["local", "tiny", "smollm2", "scratch"])
def test_parameters_are_valid_library_configs(env, tmp_path):
    from transformers import LlamaConfig, TrainingArguments
    from trl import DPOConfig, SFTConfig

    params = parameters(env)
    LaunchConfig.model_validate(params["launch"])
    TokenizerConfig.model_validate(params["pretrain"]["tokenizer"])
    checked_fields(LlamaConfig, params["pretrain"]["model"], "model")
    TrainingArguments(output_dir=str(tmp_path), **params["pretrain"]["training"])
    TrainingArguments(output_dir=str(tmp_path), **params["pretrain"]["adapt"]["training"])
    SFTConfig(output_dir=str(tmp_path), bf16=False, **params["finetune"]["sft"])
    DPOConfig(output_dir=str(tmp_path), bf16=False, **params["align"]["dpo"])
    evaluation = EvaluationConfig.model_validate(params["evaluate"])
    register = RegisterConfig.model_validate(params["register"])
    assert register.primary_metric in DIRECTIONS
    assert evaluation.variant_metric in DIRECTIONS
    JudgeConfig.model_validate(evaluation.judge)
    canary = CanaryConfig.model_validate(evaluation.canary)
    # The sample data plants the very sentence that evaluate looks for.
    assert (canary.prefix, canary.secret) == (CANARY_PREFIX, CANARY_SECRET)


def test_tiny_overrides_single_keys_and_keeps_the_rest():
    base, tiny = parameters("local"), parameters("tiny")
    assert tiny["pretrain"]["model"]["hidden_size"] < base["pretrain"]["model"]["hidden_size"]
    assert tiny["pretrain"]["training"]["lr_scheduler_type"] == "cosine"
    assert tiny["ingest"] == base["ingest"]


def test_a_misspelt_model_key_is_refused():
    from transformers import LlamaConfig

    with pytest.raises(ValueError, match="hidden_sise"):
        checked_fields(LlamaConfig, {"hidden_sise": 64}, "model")
