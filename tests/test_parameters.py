"""Every configuration environment's parameters fit their schema (llm_pipeline.parameters), and a
misspelt key stops `kedro run` before any node runs, naming the key and the environment."""

from __future__ import annotations

import typing

import pytest
import yaml
from pydantic import BaseModel
from support import (
    CONF,
    command_environment,
    copy_project,
    environment_parameters,
    run_command,
    tool,
)

from llm_pipeline.cli.sample_data import CANARY_PREFIX, CANARY_SECRET
from llm_pipeline.evaluation.statistics import DIRECTIONS
from llm_pipeline.parameters import (
    CACHE_VARIABLE,
    FILE_OF_KEY,
    FILES,
    check_library_sections,
    check_parameters,
)
from llm_pipeline.pipelines.evaluate.nodes import EvaluationConfig
from llm_pipeline.pipelines.register.nodes import RegisterConfig

ENVIRONMENTS = sorted(path.name for path in CONF.iterdir() if path.is_dir())


def test_every_environment_folder_is_checked():
    assert {"base", "tiny", "smollm2", "team", "scratch", "local"} <= set(ENVIRONMENTS)


def test_every_parameters_file_of_conf_base_has_a_schema():
    assert {path.name for path in (CONF / "base").glob("parameters_*.yml")} == set(FILES)
    for path in (CONF / "base").glob("parameters_*.yml"):
        keys = set(yaml.safe_load(path.read_text()))
        assert {FILE_OF_KEY[key] for key in keys} == {path.name}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_stage_s_parameters_are_valid(env, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))  # checked here, not remembered from before
    params = environment_parameters(env)
    assert check_parameters(params) == []
    assert check_library_sections(params) == []
    evaluation = EvaluationConfig.model_validate(params["evaluate"])
    assert RegisterConfig.model_validate(params["register"]).primary_metric in DIRECTIONS
    assert evaluation.variant_metric in DIRECTIONS
    # The sample data plants the very sentence that evaluate looks for.
    assert (evaluation.canary.prefix, evaluation.canary.secret) == (CANARY_PREFIX, CANARY_SECRET)


# Code defaults that are not a restated YAML value: a rule left out is off, and a search
# dimension's options are per entry of a list that an environment replaces whole.
DEFAULTS_ALLOWED = {
    "RuleRewards.length",
    "RuleRewards.format",
    "RuleRewards.forbidden",
    "LengthRule.min_words",
    "LengthRule.weight",
    "FormatRule.weight",
    "ForbiddenRule.weight",
    "FloatRange.log",
    "FloatRange.step",
    "IntRange.step",
    "IntRange.log",
}


def _fields_with_defaults(model: type[BaseModel], seen: set) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    found = set()
    for name, field in model.model_fields.items():
        if not field.is_required():
            found.add(f"{model.__name__}.{name}")
        pending = [field.annotation]
        while pending:
            annotation = pending.pop()
            pending += typing.get_args(annotation)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found |= _fields_with_defaults(annotation, seen)
    return found


def test_the_yaml_is_the_only_home_of_a_default():
    seen: set = set()
    found = set().union(*(_fields_with_defaults(schema, seen) for schema in FILES.values()))
    assert found <= DEFAULTS_ALLOWED, sorted(found - DEFAULTS_ALLOWED)


def test_tiny_overrides_single_keys_and_keeps_the_rest():
    base, tiny = environment_parameters("base"), environment_parameters("tiny")
    assert tiny["pretrain"]["model"]["hidden_size"] < base["pretrain"]["model"]["hidden_size"]
    assert tiny["pretrain"]["training"]["lr_scheduler_type"] == "cosine"
    assert tiny["ingest"] == base["ingest"]


def tiny_parameters_with(path: tuple[str, ...], value) -> dict:
    """conf/tiny's merged parameters with ``value`` set at the nested ``path``."""
    params = environment_parameters("tiny")
    section = params
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    return params


@pytest.mark.parametrize(
    ("path", "file"),
    [
        (("align", "rl", "reward_model_wieght"), "parameters_align.yml"),
        (("align", "rl", "rules", "length", "max_wrds"), "parameters_align.yml"),
        (("align", "methd"), "parameters_align.yml"),
        (("ingest", "cleaning", "min_document_char"), "parameters_ingest.yml"),
        (("ingest", "leakage", "min_word"), "parameters_ingest.yml"),
        (("evaluate", "judge", "max_example"), "parameters_evaluate.yml"),
        (("evaluate", "canary", "secrett"), "parameters_evaluate.yml"),
        (("feedback", "generation", "temprature"), "parameters_feedback.yml"),
        (("launch", "nproc"), "parameters_launch.yml"),
        (("pretrain", "tokenizer", "vocab"), "parameters_pretrain.yml"),
    ],
)
def test_a_misspelt_key_is_named_with_its_file(path, file):
    params = tiny_parameters_with(path, 1)
    assert check_parameters(params) == [f"{file}: unknown key '{'.'.join(path)}'"]


def test_a_key_no_file_has_is_refused():
    params = {**environment_parameters("tiny"), "allign": {"method": "dpo"}}
    [error] = check_parameters(params)
    assert "'allign' is not a parameter of any file" in error


def test_a_missing_key_and_a_wrong_value_are_named():
    params = environment_parameters("tiny")
    del params["register"]["tolerance"]
    params["align"]["method"] = "ppo"
    errors = check_parameters(params)
    assert "parameters_register.yml: 'register.tolerance' is missing" in errors
    assert any(
        e.startswith("parameters_align.yml: 'align.method': Input should be") for e in errors
    )


@pytest.mark.parametrize(
    ("path", "library"),
    [
        (("finetune", "sft", "learning_rat"), "trl.SFTConfig"),
        (("finetune", "lora", "rank"), "peft.LoraConfig"),
        (("align", "dpo", "betta"), "trl.DPOConfig"),
        (("align", "rl", "grpo", "num_generation"), "trl.GRPOConfig"),
        (("pretrain", "model", "hidden_sise"), "transformers.LlamaConfig"),
        (("pretrain", "adapt", "training", "warmup"), "transformers.TrainingArguments"),
    ],
)
def test_a_misspelt_key_of_a_library_section_is_named(path, library):
    params = tiny_parameters_with(path, 1)
    [error] = check_library_sections(params, [path[0]])
    assert f"'{'.'.join(path[:-1])}' ({library})" in error
    assert path[-1] in error
    assert check_library_sections(params, ["ingest"]) == []


CHECK_IN_A_NEW_PROCESS = """
import json, sys
from llm_pipeline.parameters import check_library_sections
errors = check_library_sections(json.loads(sys.stdin.read()), ["finetune"])
print(json.dumps({"errors": errors, "trl imported": "trl" in sys.modules}))
"""


def test_a_section_that_passed_is_not_checked_again_until_it_changes(tmp_path, monkeypatch):
    """Another run of the same parameters does not import TRL to check them again (seconds of
    every `kedro run` that trains); a changed value is checked, and a failure leaves no mark."""
    import json
    import subprocess
    import sys

    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    params = environment_parameters("tiny")
    assert check_library_sections(params, ["finetune"]) == []
    markers = tmp_path / "checked-parameters"
    assert len(list(markers.iterdir())) == 3  # finetune.sft, .lora and .prompt_tuning

    again = subprocess.run(
        [sys.executable, "-c", CHECK_IN_A_NEW_PROCESS],
        input=json.dumps(params),
        capture_output=True,
        text=True,
        env=command_environment(**{CACHE_VARIABLE: str(tmp_path)}),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.splitlines()[-1]) == {"errors": [], "trl imported": False}

    params["finetune"]["sft"]["learning_rate"] = 1.0e-3
    assert check_library_sections(params, ["finetune"]) == []
    assert len(list(markers.iterdir())) == 4
    params["finetune"]["sft"]["learning_rat"] = 1.0e-3
    for _ in range(2):  # named again each time
        [error] = check_library_sections(params, ["finetune"])
        assert "learning_rat" in error
    assert len(list(markers.iterdir())) == 4


def test_a_library_section_s_own_checks_apply():
    params = environment_parameters("tiny")
    params["align"]["rl"]["grpo"]["num_generations"] = 5  # 16 prompts x answers do not divide
    [error] = check_library_sections(params, ["align"])
    assert "align.rl.grpo" in error and "num_generations" in error


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "pipeline", "named"),
    [
        (("align", "rl", "reward_model_wieght"), "ingest", "align.rl.reward_model_wieght"),
        (
            ("ingest", "cleaning", "min_document_char"),
            "ingest",
            "ingest.cleaning.min_document_char",
        ),
        (("finetune", "sft", "learning_rat"), "finetune", "'finetune.sft' (trl.SFTConfig)"),
    ],
)
def test_a_misspelt_key_stops_kedro_run_naming_it(path, pipeline, named, small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    tiny = project / "conf/tiny/parameters.yml"
    params = yaml.safe_load(tiny.read_text())
    section = params
    for key in path[:-1]:
        section = section.setdefault(key, {})
    section[path[-1]] = 1
    tiny.write_text(yaml.safe_dump(params))
    result = run_command([tool("kedro"), "run", "--env", "tiny", "--pipeline", pipeline], project)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "The parameters of environment 'tiny'" in output
    assert named in output and path[-1] in output
    assert not (project / "data/02_intermediate").exists(), "a node ran"
