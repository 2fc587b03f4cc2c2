"""Rank 0 of a torchrun job logs its metrics into the MLflow run that launched it."""

from __future__ import annotations

import os
import time
from typing import Any

from transformers import TrainerCallback

from llm_pipeline.training.launch import RUN_ID_VARIABLE


class MlflowMetricsCallback(TrainerCallback):
    """Log every number the Trainer reports as ``<prefix>/<name>`` at the current step.

    Transformers' own MLflow callback also logs every TrainingArguments field as a run
    parameter, which collides across stages in one run; this logs metrics only.
    """

    def __init__(self, prefix: str):
        self._prefix = prefix
        self._run_id = os.environ.get(RUN_ID_VARIABLE)
        self._client: Any = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self._run_id or not state.is_world_process_zero or not logs:
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        if self._client is None:
            self._client = MlflowClient()
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{self._prefix}/{name}", float(value), now, state.global_step)
            for name, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        if metrics:
            self._client.log_batch(self._run_id, metrics=metrics)
