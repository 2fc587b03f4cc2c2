"""End to end: `kedro run` on the tiny environment, from raw files to a registered model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import copy_project, run_command, tool

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "pretrain", "finetune", "align", "evaluate", "register"]


@pytest.fixture(scope="module")
def finished_run(small_raw_data, tmp_path_factory) -> tuple[Path, str]:
    project = copy_project(tmp_path_factory.mktemp("project"), small_raw_data)
    result = run_command([tool("kedro"), "run", "--env", "tiny"], cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, result.stdout + result.stderr


@pytest.fixture
def tracking(finished_run, monkeypatch):
    import mlflow

    project, _ = finished_run
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_every_stage_is_registered(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    listed = run_command([tool("kedro"), "registry", "list"], cwd=project).stdout
    for name in ["__default__", *STAGES]:
        assert f"- {name}\n" in listed


def test_the_model_is_registered_as_challenger_and_champion(tracking):
    version = tracking.get_model_version_by_alias("llm-pipeline", "challenger")
    assert int(version.version) == 1
    assert int(tracking.get_model_version_by_alias("llm-pipeline", "champion").version) == 1
    assert version.tags["promotion.reason"] == "there is no champion yet"
    assert float(version.tags["metric.perplexity"]) > 1


def test_the_challenger_loads_back_and_generates(tracking):
    import mlflow

    generator = mlflow.transformers.load_model("models:/llm-pipeline@challenger")
    output = generator("How long does shipping take?", max_new_tokens=8, do_sample=False)
    assert len(output[0]["generated_text"]) > len("How long does shipping take?")
    chat = mlflow.pyfunc.load_model("models:/llm-pipeline@challenger")
    answer = chat.predict({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
    assert answer[0]["choices"][0]["message"]["role"] == "assistant"


def test_finetuning_lowers_validation_perplexity(finished_run):
    project, _ = finished_run
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert set(metrics) == {"base", "sft", "aligned", "alignment"}
    assert metrics["sft"]["perplexity"] < metrics["base"]["perplexity"]
    assert metrics["sft"]["examples"] > 0


def test_one_mlflow_run_holds_params_training_curves_and_reports(tracking):
    runs = tracking.search_runs(
        [tracking.get_experiment_by_name("llm-pipeline-tiny").experiment_id]
    )
    assert len(runs) == 1
    run = runs[0]
    for key in ("eval.sft.perplexity", "eval.base.perplexity", "pretrain/loss", "sft/loss"):
        assert key in run.data.metrics, key
    assert len(tracking.get_metric_history(run.info.run_id, "pretrain/loss")) >= 2
    assert run.data.params["pretrain.model.hidden_size"] == "32"
    reports = {a.path for a in tracking.list_artifacts(run.info.run_id, "reports")}
    assert {
        "reports/metrics.json",
        "reports/validation_report.json",
        "reports/data_report.json",
        "reports/data_report.png",
    } <= reports
    docs = {a.path for a in tracking.list_artifacts(run.info.run_id, "data_docs")}
    assert "data_docs/index.html" in docs
    data = {a.path for a in tracking.list_artifacts(run.info.run_id, "data")}
    assert {"data/quarantine.jsonl", "data/accounting.jsonl"} <= data


def test_models_are_versioned_folders_with_their_config(finished_run):
    project, _ = finished_run
    for name in ("tokenizer", "base_model", "sft_model", "aligned_model"):
        versions = list((project / "data/06_models" / name).iterdir())
        assert len(versions) == 1
        assert (versions[0] / name / "tokenizer.json").exists()
    aligned = next((project / "data/06_models/aligned_model").iterdir()) / "aligned_model"
    assert "dpo" in (aligned / "llm_pipeline_config.yaml").read_text()


def test_a_broken_contract_stops_the_run_before_training(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    shutil.rmtree(project / "data/01_raw/preferences")
    result = run_command([tool("kedro"), "run", "--env", "tiny"], cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Data contracts failed; no training was started" in output
    assert "preferences_train: expect_table_row_count_to_be_between" in output
    assert "--from-nodes" in output
    report = json.loads((project / "data/08_reporting/validation_report.json").read_text())
    assert report["success"] is False
    assert not (project / "data/06_models").exists()
