"""The search configuration: samplers, paths checked against the stage's parameters, grid rules,
and the search loop on a cheap objective (no training)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from pydantic import ValidationError
from support import PROJECT_ROOT, parameters_of

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.pipelines.tune.nodes import FIXED, SCHEMAS, search_hyperparameters
from llm_pipeline.pipelines.tune.search import (
    TuneConfig,
    as_overrides,
    check_parameter_path,
    make_sampler,
    run_search,
    with_values,
)
from llm_pipeline.settings import CONFIG_LOADER_ARGS
from llm_pipeline.training.launch import TrainingLaunchError

PRETRAIN = {
    "tokenizer": {"vocab_size": 512},
    "block_size": 64,
    "model": {"hidden_size": 32, "num_hidden_layers": 1},
    "training": {"learning_rate": 3.0e-3, "warmup_steps": 2, "seed": 42},
}
RATE = {"path": "pretrain.training.learning_rate", "type": "float", "low": 1e-4, "high": 1e-2}


def config(**fields) -> TuneConfig:
    return TuneConfig.model_validate(
        parameters_of("tune", env="base", **{"n_trials": 4, "search_space": [RATE], **fields})
    )


def check(path: str) -> None:
    check_parameter_path(path, "pretrain", PRETRAIN, SCHEMAS, FIXED)


@pytest.mark.parametrize("env", ["local", "tiny"])
def test_every_environment_has_a_valid_search(env):
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    parameters = loader["parameters"]
    tune = TuneConfig.model_validate(parameters["tune"])
    for dimension in tune.search_space:
        check_parameter_path(dimension.path, tune.stage, parameters[tune.stage], SCHEMAS, FIXED)


@pytest.mark.parametrize(
    ("sampler", "name"),
    [("random", "RandomSampler"), ("grid", "GridSampler"), ("tpe", "TPESampler")],
)
def test_each_sampler_is_the_one_named(sampler, name):
    weight_decay = {
        "path": "pretrain.training.weight_decay",
        "type": "categorical",
        "choices": [0.0, 0.1],
    }
    space = [weight_decay] if sampler == "grid" else [RATE, weight_decay]
    assert type(make_sampler(config(sampler=sampler, search_space=space))).__name__ == name


def test_a_grid_over_a_continuous_range_is_refused_naming_the_path():
    with pytest.raises(ValidationError, match="grid sampler needs explicit values") as error:
        config(sampler="grid")
    assert "pretrain.training.learning_rate" in str(error.value)
    log_range = {"path": "pretrain.training.warmup_steps", "type": "int", "low": 1, "high": 64}
    with pytest.raises(ValidationError, match="warmup_steps"):
        config(sampler="grid", search_space=[{**log_range, "log": True}])


def test_a_grid_walks_every_combination_once_and_keeps_the_minimum():
    space = [
        {"path": "pretrain.training.learning_rate", "type": "categorical", "choices": [1, 2, 3]},
        {"path": "pretrain.training.warmup_steps", "type": "int", "low": 0, "high": 20, "step": 10},
    ]
    seen = []

    def score(values):
        seen.append(tuple(values.values()))
        return (values["pretrain.training.learning_rate"] - 2) ** 2 + values[
            "pretrain.training.warmup_steps"
        ]

    result = run_search(config(sampler="grid", n_trials=100, search_space=space), score)
    assert sorted(seen) == [(r, w) for r in (1, 2, 3) for w in (0, 10, 20)]
    assert result.best_values == {
        "pretrain.training.learning_rate": 2,
        "pretrain.training.warmup_steps": 0,
    }
    assert result.best_value == 0
    assert len(result.trials) == 9


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_sampling_stays_in_range_and_repeats_with_the_seed(sampler):
    def values_of(seed):
        seen = []

        def record(values):
            seen.append(values["pretrain.training.learning_rate"])
            return 1.0

        run_search(config(sampler=sampler, seed=seed, search_space=[{**RATE, "log": True}]), record)
        return seen

    first = values_of(7)
    assert len(set(first)) == 4
    assert all(1e-4 <= value <= 1e-2 for value in first)
    assert values_of(7) == first
    assert values_of(8) != first


def test_maximise_keeps_the_largest():
    search = config(
        sampler="random",
        objective={"metric": "eval_accuracy", "direction": "maximize"},
    )
    result = run_search(search, lambda values: values["pretrain.training.learning_rate"])
    assert result.best_value == result.trials["value"].max()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("pretrain.trainin.learning_rate", "'pretrain.trainin' is not a section"),
        ("pretrain.model.hidden_sise", "'hidden_sise' is not set under 'pretrain.model'"),
        ("pretrain.training.learning_rte", "not a field of TrainingArguments"),
        ("finetune.sft.learning_rate", "every path starts with 'pretrain.'"),
        ("learning_rate", "every path starts with 'pretrain.'"),
        ("pretrain.tokenizer.vocab_size", "tokenizer already in the catalog"),
    ],
)
def test_unknown_paths_fail_naming_the_path(path, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        check(path)
    assert path in str(error.value)


def test_a_library_field_not_yet_set_may_be_searched():
    check("pretrain.training.gradient_accumulation_steps")
    check("pretrain.model.hidden_size")


def test_the_node_refuses_a_bad_path_before_training(tiny_model_dir):
    frame = pd.DataFrame({"text": ["a"]})
    bad = parameters_of(
        "tune", env="base", n_trials=2, search_space=[{**RATE, "path": "pretrain.x.y"}]
    )
    model = ModelFolder(tiny_model_dir)
    with pytest.raises(ValueError, match=re.escape("'pretrain.x.y'")):
        search_hyperparameters(
            frame, frame, model, frame, frame, model, None, None, model, bad, PRETRAIN, {}, {}, {}
        )
    with pytest.raises(ValueError, match="stages that can be tuned"):
        search_hyperparameters(
            frame,
            frame,
            model,
            frame,
            frame,
            model,
            None,
            None,
            model,
            {**bad, "stage": "align"},
            PRETRAIN,
            {},
            {},
            {},
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"n_trails": 3},
        {"search_space": [{**RATE, "low": 1.0, "high": 0.1}]},
        {"search_space": [{**RATE, "log": True, "low": 0.0}]},
        {"search_space": [RATE, RATE]},
        {"search_space": [{**RATE, "type": "uniform"}]},
        {"search_space": []},
    ],
)
def test_malformed_search_configs_are_refused(fields):
    with pytest.raises(ValidationError):
        config(**fields)


def test_trial_values_are_applied_to_a_copy_and_written_as_conf_overrides():
    values = {"pretrain.training.learning_rate": 0.01, "pretrain.model.hidden_size": 64}
    trial = with_values(PRETRAIN, values)
    assert trial["training"] == {**PRETRAIN["training"], "learning_rate": 0.01}
    assert trial["model"]["hidden_size"] == 64
    assert PRETRAIN["training"]["learning_rate"] == 3.0e-3
    assert as_overrides(values) == {
        "pretrain": {"training": {"learning_rate": 0.01}, "model": {"hidden_size": 64}}
    }


def test_a_failed_trial_is_recorded_and_the_search_goes_on():
    calls = []

    def sometimes_fails(values):
        calls.append(values)
        if len(calls) == 2:
            raise TrainingLaunchError("llm_pipeline.training.pretrain", 1, ["out of memory"])
        return float(len(calls))

    result = run_search(
        config(sampler="random"), sometimes_fails, recoverable=(TrainingLaunchError,)
    )
    assert result.trials["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert "exit code 1" in result.trials["error"][1]
    assert result.best_value == 1.0


def test_a_search_where_every_trial_failed_says_so():
    def always_fails(values):
        raise TrainingLaunchError("llm_pipeline.training.pretrain", 137, ["killed"])

    with pytest.raises(RuntimeError, match=r"All 4 trials .* failed.*exit code 137"):
        run_search(config(sampler="random"), always_fails, recoverable=(TrainingLaunchError,))
