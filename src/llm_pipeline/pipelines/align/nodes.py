"""Align: DPO on preference pairs, starting from the fine-tuned model."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def align_with_dpo(
    preferences_train: pd.DataFrame,
    preferences_validation: pd.DataFrame,
    sft_model: ModelFolder,
    params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The fine-tuned model after DPO on the training preference pairs."""
    from llm_pipeline.torchrun_jobs import run_training_job

    if params["method"] != "dpo":
        raise ValueError(f"align.method '{params['method']}' is not supported; use 'dpo'.")
    tables = {"train_file": (preferences_train, PAIR_COLUMNS)}
    if len(preferences_validation):
        tables["eval_file"] = (preferences_validation, PAIR_COLUMNS)
    job = {"model_dir": sft_model.path, "dpo": params["dpo"]}
    return run_training_job("llm_pipeline.training.dpo", job, tables, launch_params)
