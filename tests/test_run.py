"""End to end: `kedro run` on the tiny environment, from raw files to a registered model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from support import (
    copy_project,
    isolated_mlflow,
    run_command,
    saved_weights,
    tool,
    training_losses,
)

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "pretrain", "finetune", "align", "evaluate", "register"]


@pytest.fixture(scope="module")
def finished_run(finished_tiny_run) -> tuple[Path, str]:
    return finished_tiny_run


@pytest.fixture
def tracking(finished_run, monkeypatch):
    import mlflow

    project, _ = finished_run
    with isolated_mlflow(project, monkeypatch):
        yield mlflow.MlflowClient()


def test_every_stage_is_registered(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    listed = run_command([tool("kedro"), "registry", "list"], cwd=project).stdout
    for name in ["__default__", *STAGES]:
        assert f"- {name}\n" in listed


def test_the_model_is_registered_as_challenger_and_champion(tracking):
    version = tracking.get_model_version_by_alias("llm-pipeline", "challenger")
    assert int(version.version) == 1
    assert int(tracking.get_model_version_by_alias("llm-pipeline", "champion").version) == 1
    reasons = version.tags["promotion.reason"].split("; ")
    assert reasons[0] == "there is no champion yet"
    assert reasons[1].startswith("perplexity -") and reasons[1].endswith("base model: better")
    assert float(version.tags["metric.perplexity"]) > 1
    assert 0 <= float(version.tags["metric.similarity"]) <= 1
    assert version.tags["metric.fluency"].startswith("not computed: no judge configured")


def test_the_version_traces_back_to_code_data_contracts_and_runs(tracking, finished_run):
    import hashlib

    import mlflow

    project, _ = finished_run
    version = tracking.get_model_version_by_alias("llm-pipeline", "champion")
    tags = version.tags
    # copy_project makes no git checkout: the tag says so rather than inventing a commit.
    assert tags["lineage.git_commit"].startswith("unknown")
    trained_on = project / "data/03_primary/documents_train.jsonl"
    expected = hashlib.md5(trained_on.read_bytes()).hexdigest()
    assert tags["lineage.data.data/03_primary/documents_train.jsonl"] == expected
    assert re.fullmatch(r"[0-9a-f]{32}", tags["lineage.data.data/01_raw"])
    assert tags["data_contracts"] == "passed"
    assert (
        tags["validation.expectations"].split("/")[0]
        == tags["validation.expectations"].split("/")[1].split(" ")[0]
    )
    for stage in ("pretrain", "finetune", "reward", "align"):
        assert tags[f"lineage.run.{stage}"] == version.run_id
    assert tags["training.method"] == "pretrain + sft (full) + dpo"
    card = Path(mlflow.artifacts.download_artifacts(f"models:/llm-pipeline/{version.version}"))
    readme = (card / "README.md").read_text()
    assert "## Intended use and limits" in readme
    assert expected in readme


def test_the_challenger_loads_back_and_answers_from_its_passage_index(tracking):
    import mlflow

    chat = mlflow.pyfunc.load_model("models:/llm-pipeline@challenger")
    question = [{"role": "user", "content": "How long does shipping take?"}]
    prompt = chat.get_raw_model().grounded(question)
    answer = chat.predict({"messages": question, "max_tokens": 8})

    # tiny retrieval: the best passage (top_k 1), numbered, in a system turn before the chat.
    assert prompt[0]["role"] == "system"
    assert prompt[0]["content"].count("\n[1] ") == 1
    assert "[2]" not in prompt[0]["content"]
    assert prompt[1:] == question
    assert answer["choices"][0]["message"]["role"] == "assistant"


def test_finetuning_lowers_validation_perplexity_beyond_its_interval(finished_run):
    project, _ = finished_run
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert set(metrics) == {
        "base",
        "sft",
        "aligned",
        "comparisons",
        "prompt_variants",
        "alignment",
        "canary",
        "retrieval",
        "documents",
    }
    # From scratch there is no starting model: the held-out documents' perplexity of base only.
    assert set(metrics["documents"]) == {"base"} and metrics["documents"]["base"]["n"] > 0
    # The index stage's passages are found for the tiny sample's questions.
    recall = metrics["retrieval"]["recall_at_3"]
    assert metrics["retrieval"]["enabled"] is True and recall["n"] > 0
    assert 0.5 < recall["value"] <= 1.0
    assert set(metrics["aligned"]["answer_accuracy"]) == {"value", "low", "high", "n"}
    sft, base = metrics["sft"]["perplexity"], metrics["base"]["perplexity"]
    assert sft["low"] <= sft["value"] <= sft["high"]
    assert sft["n"] > 0
    assert sft["high"] < base["low"]
    assert metrics["comparisons"]["sft_vs_base"]["perplexity"]["better"] is True
    for judged in ("groundedness", "relevance", "coherence", "fluency"):
        assert metrics["aligned"][judged]["computed"] is False
        assert "value" not in metrics["aligned"][judged]
    variants = metrics["prompt_variants"]
    assert variants["best"] in variants["variants"]
    assert len(variants["variants"]) == 3


def test_the_planted_canary_is_in_the_training_data_and_its_exposure_is_reported(finished_run):
    project, _ = finished_run
    trained_on = (project / "data/03_primary/documents_train.jsonl").read_text()
    assert "The access code of the north vault is 48213906." in trained_on
    canary = json.loads((project / "data/08_reporting/metrics.json").read_text())["canary"]
    assert 0 <= canary["exposure"] <= canary["max_exposure"]
    assert 1 <= canary["rank"] <= canary["candidates"] + 1
    assert isinstance(canary["regurgitated"], bool)


def test_the_evaluation_report_is_written_and_logged(finished_run, tracking):
    project, _ = finished_run
    reporting = project / "data/08_reporting"
    assert (reporting / "evaluation_charts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (reporting / "evaluation_table.csv").read_text()
    assert "similarity" in table and "aligned" in table
    assert "similarity" in (reporting / "evaluation_report.md").read_text()
    assert "<html" in (reporting / "evaluation_samples.html").read_text().lower()
    run = tracking.search_runs(
        [tracking.get_experiment_by_name("llm-pipeline-tiny").experiment_id]
    )[0]
    reports = {a.path for a in tracking.list_artifacts(run.info.run_id, "reports")}
    for name in (
        "evaluation_table.csv",
        "evaluation_report.md",
        "evaluation_charts.png",
        "evaluation_samples.html",
    ):
        assert f"reports/{name}" in reports


def test_one_mlflow_run_holds_params_training_curves_and_reports(tracking):
    runs = tracking.search_runs(
        [tracking.get_experiment_by_name("llm-pipeline-tiny").experiment_id]
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"  # ended by kedro-mlflow, before the fast exit
    for key in (
        "eval.sft.perplexity.value",
        "eval.base.perplexity.value",
        "eval.aligned.similarity.high",
        "pretrain/loss",
        "sft/loss",
    ):
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


def test_every_parameter_a_node_reads_is_logged_once_with_its_value(tracking, finished_run):
    """The project's hook logs each node's parameters in one request (hooks.py): the run must
    hold what kedro-mlflow's own hook would, every flattened key of every ``params:`` input."""
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    from llm_pipeline.settings import CONFIG_LOADER_ARGS

    project, _ = finished_run
    bootstrap_project(project)
    loader = OmegaConfigLoader(str(project / "conf"), **{**CONFIG_LOADER_ARGS, "env": "tiny"})
    parameters = loader["parameters"]

    def flattened(prefix: str, value) -> dict[str, str]:
        if isinstance(value, dict):
            return {
                k: v
                for key, item in value.items()
                for k, v in flattened(f"{prefix}.{key}", item).items()
            }
        return {prefix: str(value)[:MAX_PARAM_VAL_LENGTH]}

    expected: dict[str, str] = {}
    for name in {
        i for n in pipelines["__default__"].nodes for i in n.inputs if i.startswith("params:")
    }:
        value = parameters
        for part in name[len("params:") :].split("."):
            value = value[part]
        expected.update(flattened(name[len("params:") :], value))
    [run] = tracking.search_runs(
        [tracking.get_experiment_by_name("llm-pipeline-tiny").experiment_id]
    )
    assert len(expected) > 100
    assert run.data.params == expected


def test_models_are_versioned_folders_with_their_config(finished_run):
    project, _ = finished_run
    for name in ("tokenizer", "base_model", "sft_model", "aligned_model"):
        versions = list((project / "data/06_models" / name).iterdir())
        assert len(versions) == 1
        assert (versions[0] / name / "tokenizer.json").exists()
    aligned = next((project / "data/06_models/aligned_model").iterdir()) / "aligned_model"
    assert "dpo" in (aligned / "llm_pipeline_config.yaml").read_text()
    # Each job wrote its model into the models folder (launch.staging_root), and the catalog
    # renamed it into place: nothing is left behind.
    assert not list((project / "data/06_models").glob(".training-output-*"))


def test_each_training_job_lowered_its_loss_moved_the_weights_and_saved_no_pickle(finished_run):
    # Each entrypoint ran as a torchrun job of the run (how DPO's loss falls: training/test_dpo).
    project, _ = finished_run
    folders = {
        name: next((project / "data/06_models" / name).iterdir()) / name
        for name in ("base_model", "sft_model", "reward_model", "aligned_model")
    }
    pretraining = training_losses(folders["base_model"])
    finetuning = training_losses(folders["sft_model"])
    assert len(pretraining) >= 3 and pretraining[-1] < pretraining[0] - 0.3
    assert len(finetuning) >= 3 and finetuning[-1] < finetuning[0]
    for before, after in (("base_model", "sft_model"), ("sft_model", "aligned_model")):
        old, new = saved_weights(folders[before]), saved_weights(folders[after])
        assert set(old) == set(new) and any(not old[k].equal(new[k]) for k in old), after
    for name, folder in folders.items():
        assert "output_dir" in (folder / "llm_pipeline_config.yaml").read_text(), name
        assert not (folder / "training_args.bin").exists(), name
        assert not list(folder.parent.glob(f".{name}.saving")), name


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
