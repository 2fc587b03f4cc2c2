"""kedro-mlflow's metrics dataset, logging a save's metrics in one request.

``MlflowMetricsHistoryDataset`` logs each metric in its own request (an SQLite transaction on
the embedded store, a round trip to a team server): the evaluate stage's 160 figures took
1.2 s of the tiny run's 116 s (bench/overhead.py). This one sends them through ``log_batch``,
which MLflow splits into requests of at most 1,000 metrics.
"""

from __future__ import annotations

import time
from itertools import chain

from kedro.io import DatasetError
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from mlflow import MlflowClient
from mlflow.entities import Metric


class MlflowMetricsBatchDataset(MlflowMetricsHistoryDataset):
    """The same catalog entry and metric names as ``MlflowMetricsHistoryDataset``."""

    def _save(self, data: dict) -> None:
        if not self._logging_activated:
            return
        try:
            run_id = self.run_id
        except DatasetError:
            # No run to log into: kedro-mlflow's own save starts one, as mlflow.log_metric does.
            super()._save(data)
            return
        now = int(time.time() * 1000)
        items = chain.from_iterable(
            self._build_args_list_from_metric_item(key, value) for key, value in data.items()
        )
        metrics = [Metric(key, value, now, step) for key, value, step in items]
        MlflowClient().log_batch(run_id, metrics=metrics)
