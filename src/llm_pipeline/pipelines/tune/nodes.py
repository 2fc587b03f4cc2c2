"""Tune: search a training stage's parameters with Optuna; every trial is that stage's own node.

A trial calls the stage's training node with the trial's values set in its parameters, so it
runs exactly the torchrun job `kedro run --pipeline <stage>` would run. The best values come
back as parameter overrides in the shape of conf/, for the next `kedro run` to pick up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import Folder, ModelFolder

logger = logging.getLogger(__name__)


def _training_arguments() -> type:
    from transformers import TrainingArguments

    return TrainingArguments


def _sft_config() -> type:
    from trl import SFTConfig

    return SFTConfig


# Sections whose keys are a library config class's fields, so a key not yet set may be searched.
SCHEMAS: dict[str, Callable[[], type]] = {
    "pretrain.training": _training_arguments,
    "pretrain.adapt.training": _training_arguments,
    "finetune.sft": _sft_config,
}
# Sections that a trial does not re-run, and why.
FIXED = {"pretrain.tokenizer": "every trial trains with the tokenizer already in the catalog"}


def search_hyperparameters(
    documents_train: pd.DataFrame,
    documents_validation: pd.DataFrame,
    tokenizer: ModelFolder,
    conversations_train: pd.DataFrame,
    conversations_validation: pd.DataFrame,
    pretrained_model: ModelFolder,
    starting_model: ModelFolder | None,
    finetune_starting_model: ModelFolder | None,
    passage_index: Folder,
    params: dict[str, Any],
    pretrain_params: dict[str, Any],
    finetune_params: dict[str, Any],
    retrieval_params: dict[str, Any],
    launch_params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The best values ``params.search_space`` found for ``params.stage``, and the trial table."""
    from llm_pipeline.pipelines.tune.search import (
        TuneConfig,
        as_overrides,
        check_parameter_path,
        discard,
        read_objective,
        run_search,
        with_values,
    )
    from llm_pipeline.training.jobs import TRAINING_LOG_FILE
    from llm_pipeline.training.launch import TrainingLaunchError
    from llm_pipeline.training.stage_jobs import finetune_model, pretrain_base_model

    config = TuneConfig.model_validate(params)
    stages: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], ModelFolder]]] = {
        "pretrain": (
            pretrain_params,
            lambda trial_params: pretrain_base_model(
                documents_train,
                documents_validation,
                tokenizer,
                starting_model,
                trial_params,
                launch_params,
            ),
        ),
        "finetune": (
            finetune_params,
            lambda trial_params: finetune_model(
                conversations_train,
                conversations_validation,
                pretrained_model,
                finetune_starting_model,
                passage_index,
                trial_params,
                retrieval_params,
                launch_params,
            ),
        ),
    }
    if config.stage not in stages:
        raise ValueError(
            f"tune.stage is '{config.stage}'; the stages that can be tuned are {sorted(stages)}."
        )
    stage_params, train = stages[config.stage]
    for dimension in config.search_space:
        check_parameter_path(dimension.path, config.stage, stage_params, SCHEMAS, FIXED)

    def train_and_score(values: dict[str, Any]) -> float:
        folder = train(with_values(stage_params, values))
        try:
            return read_objective(folder.path, config.objective.metric, TRAINING_LOG_FILE)
        finally:
            discard(folder.path)

    result = run_search(config, train_and_score, recoverable=(TrainingLaunchError,))
    return as_overrides(result.best_values), result.trials
