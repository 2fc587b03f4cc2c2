"""MlflowMetricsBatchDataset against a real MLflow store: one request, the same metrics as
kedro-mlflow's MlflowMetricsHistoryDataset."""

from __future__ import annotations

import pytest
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from support import isolated_mlflow

from llm_pipeline.datasets import MlflowMetricsBatchDataset

FIGURES = {
    "aligned.perplexity.value": {"value": 1.36, "step": 0},
    "aligned.perplexity.low": {"value": 1.29, "step": 0},
    "loss": [{"value": 2.0, "step": 0}, {"value": 1.5, "step": 1}, {"value": 1.2, "step": 2}],
}


@pytest.fixture
def client(tmp_path, monkeypatch):
    import mlflow

    with isolated_mlflow(tmp_path, monkeypatch):
        yield mlflow.MlflowClient()


def history(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    names = client.get_run(run_id).data.metrics
    return {
        name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        for name in names
    }


def test_a_save_logs_every_metric_and_step_as_kedro_mlflow_does_in_one_request(client, monkeypatch):
    import mlflow

    requests = []
    log_batch = mlflow.MlflowClient.log_batch
    monkeypatch.setattr(
        mlflow.MlflowClient,
        "log_batch",
        lambda self, *args, **kwargs: requests.append(1) or log_batch(self, *args, **kwargs),
    )
    with mlflow.start_run() as batched:
        MlflowMetricsBatchDataset(prefix="eval").save(FIGURES)
    with mlflow.start_run() as reference:
        MlflowMetricsHistoryDataset(prefix="eval").save(FIGURES)

    assert len(requests) == 1
    logged = history(client, batched.info.run_id)
    assert logged == history(client, reference.info.run_id)
    assert logged["eval.loss"] == [(0, 2.0), (1, 1.5), (2, 1.2)]
    assert logged["eval.aligned.perplexity.low"] == [(0, 1.29)]
    reloaded = MlflowMetricsBatchDataset(prefix="eval", run_id=batched.info.run_id).load()
    assert reloaded["eval.aligned.perplexity.value"] == {"value": 1.36, "step": 0}
