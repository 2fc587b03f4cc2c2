"""End to end with ``align.method: rlhf``: `kedro run` on the tiny environment and the sample
data trains a reward model, aligns by GRPO against it, and reports the evidence."""

from __future__ import annotations

import json

import pytest
from support import copy_project, run_command, tool

pytestmark = pytest.mark.slow


def test_kedro_run_with_rlhf_reports_the_alignment_evidence(small_raw_data, tmp_path):
    import mlflow

    project = copy_project(tmp_path, small_raw_data)
    command = [tool("kedro"), "run", "--env", "tiny", "--params", "align.method=rlhf"]
    result = run_command(command, cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    evidence = metrics["alignment"]
    assert evidence["method"] == "rlhf (grpo)"
    assert evidence["heldout_pairs"] > 0
    for name in ("sft_preference_accuracy", "aligned_preference_accuracy"):
        assert 0.0 <= evidence[name] <= 1.0
    for name in ("sft_reward_model_score", "aligned_reward_model_score"):
        assert isinstance(evidence[name], float)
    assert 0.0 <= evidence["reward_model_heldout_accuracy"] <= 1.0

    (version,) = (project / "data/06_models/reward_model").iterdir()
    reward_model = version / "reward_model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "reward_metrics.json"):
        assert (reward_model / name).exists(), name
    (version,) = (project / "data/06_models/aligned_model").iterdir()
    assert "algorithm: grpo" in (version / "aligned_model/llm_pipeline_config.yaml").read_text()

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("llm-pipeline-tiny").experiment_id])
    logged = run.data.metrics
    for name in (
        "reward/heldout_accuracy",
        "rl/reward",
        "rl/kl",
        "rl/completions/mean_length",
        "eval.alignment.aligned_preference_accuracy",
        "eval.alignment.aligned_reward_model_score",
    ):
        assert name in logged, name
    assert len(client.get_metric_history(run.info.run_id, "rl/kl")) >= 2
