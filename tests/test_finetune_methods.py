"""End to end: prompt tuning chosen by parameters alone, and the smollm2 environment fine-tuning
the real SmolLM2-135M-Instruct with LoRA (conf/base's method, chosen by its parameters alone)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from support import copy_of_finished_run, copy_project, run_command, tool

pytestmark = pytest.mark.slow


def latest_model(project: Path, name: str) -> Path:
    versions = sorted((project / "data/06_models" / name).iterdir())
    return versions[-1] / name


@pytest.fixture(scope="module")
def pretrained_project(finished_tiny_run, tmp_path_factory) -> Path:
    """A copy of the finished tiny project: validated data, the passage index and a pretrained
    model (and the run's other models, which the runs here version anew)."""
    return copy_of_finished_run(finished_tiny_run, tmp_path_factory.mktemp("methods") / "project")


def test_prompt_tuning_chosen_by_parameters_goes_through_align_evaluate_and_register(
    pretrained_project, tmp_path
):
    from safetensors.torch import load_file

    project = pretrained_project
    result = run_command(
        [
            tool("kedro"), "run", "--env", "tiny",
            "--pipelines", "finetune,align,evaluate,register",
            # align.lora as conf/base sets it: a soft prompt trains further as itself. No reward
            # model, as conf/base under DPO: the shared run covers its training.
            "--params",
            "finetune.method=prompt_tuning,align.lora.r=4,align.reward_model_with_dpo=false",
        ],
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is a soft prompt: it trains further as itself, align.lora set aside" in result.stdout
    base = latest_model(project, "base_model")
    sft, aligned = latest_model(project, "sft_model"), latest_model(project, "aligned_model")
    for folder in (sft, aligned):
        adapter = json.loads((folder / "adapter_config.json").read_text())
        assert adapter["peft_type"] == "PROMPT_TUNING"
        assert adapter["base_model_name_or_path"] == str(base)
    # DPO trained the soft prompt further: the prompt moved, TRL's reference copy is not saved.
    assert not (aligned / "ref").exists()
    before = load_file(sft / "adapter_model.safetensors")
    after = load_file(aligned / "adapter_model.safetensors")
    assert set(before) == set(after)
    assert any(not before[name].equal(after[name]) for name in before)
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert 1 < metrics["aligned"]["perplexity"]["value"] < float("inf")

    # The registered model stands alone: it answers with the base model's folder gone (the
    # soft prompt is registered as an adapter over the base, itself a registered version). A
    # separate process, so this test leaves MLflow's client state as it found it.
    load = (
        "import json, mlflow; chat = mlflow.pyfunc.load_model('models:/llm-pipeline@challenger'); "
        "version = mlflow.MlflowClient().get_model_version_by_alias('llm-pipeline', 'challenger'); "
        "print(version.tags['weights']); "
        "print(json.dumps(chat.predict({'messages': [{'role': 'user', 'content': 'Hi'}], "
        "'max_tokens': 8})))"
    )
    base.rename(tmp_path / "moved_base")
    uri = f"sqlite:///{project / 'mlflow.db'}"
    try:
        loaded = run_command([sys.executable, "-c", load], cwd=project, MLFLOW_TRACKING_URI=uri)
    finally:
        (tmp_path / "moved_base").rename(base)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-2] == "1 adapter(s) over the base"
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert answer["choices"][0]["message"]["role"] == "assistant"


def test_the_smollm2_environment_adapts_then_fine_tunes_smollm2_with_lora(
    small_raw_data, smollm2_gguf_cache, tmp_path
):
    project = copy_project(tmp_path, small_raw_data)
    # The session's converted SmolLM2 (conftest.py), not the user's ~/.cache.
    globals_file = project / "conf/smollm2/globals.yml"
    globals_file.write_text(yaml.safe_dump({"gguf_cache_dir": str(smollm2_gguf_cache)}))
    # Two LoRA steps of the environment's four: each is seconds of a 135M model on a CPU. No
    # checkpoints ('no' quoted, or YAML reads false): each stage's last step wrote one, 1.6 GB
    # for the adapted model (its weights and Adam's moments), that nothing here reads; resuming
    # is tested on the tiny models.
    shorter = (
        "finetune.sft.max_steps=2,finetune.sft.max_length=256,finetune.sft.save_strategy='no',"
        "pretrain.adapt.training.save_strategy='no'"
    )
    command = [tool("kedro"), "run", "--env", "smollm2", "--to-outputs", "sft_model"]
    result = run_command([*command, "--params", shorter], cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # The pretrain stage continued SmolLM2's own pretraining on the documents, with its own
    # tokenizer, and fine-tuning started from that adapted model.
    adapted = latest_model(project, "base_model")
    assert json.loads((adapted / "config.json").read_text())["hidden_size"] == 576
    tokenizer = json.loads((latest_model(project, "tokenizer") / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 49152
    assert "Pretraining a 134.52M-parameter starting model" in output
    sft = latest_model(project, "sft_model")
    model_config = json.loads((sft / "config.json").read_text())
    assert model_config["model_type"] == "llama" and model_config["hidden_size"] == 576
    assert yaml.safe_load((sft / "llm_pipeline_config.yaml").read_text())["model_dir"] == str(
        adapted.resolve()
    )
    assert "Trainable parameters:" in output and "(lora)" in output
    assert yaml.safe_load((sft / "llm_pipeline_config.yaml").read_text())["method"] == "lora"
    assert not (sft / "adapter_config.json").exists()
