"""A real search: the tune pipeline trains the tiny model under torchrun, one nested MLflow run
per trial, and writes the best values where the next `kedro run` reads them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from support import PROJECT_ROOT, RETRIEVAL_OFF, new_mlflow_store, shop_sentences

from llm_pipeline.datasets import StartingModelDataset
from llm_pipeline.datasets.model_folder import Folder, ModelFolder
from llm_pipeline.pipelines.tune import create_pipeline
from llm_pipeline.settings import CONFIG_LOADER_ARGS

pytestmark = pytest.mark.slow

N_TRIALS = 2


def project_config(root: Path, env: str) -> OmegaConfigLoader:
    return OmegaConfigLoader(str(root / "conf"), env=env, **CONFIG_LOADER_ARGS)


def search_catalog(root: Path) -> DataCatalog:
    """In-memory inputs from the tiny environment; the outputs as the project's catalog has them."""
    parameters = project_config(root, "tiny")["parameters"]
    tune = {**parameters["tune"], "n_trials": N_TRIALS}
    sentences = shop_sentences()
    documents = pd.DataFrame({"text": [" ".join(sentences[i : i + 4]) for i in range(0, 180, 4)]})
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    conversations = pd.DataFrame({"messages": [turns] * 4})
    tiny_model = ModelFolder(root / "tiny_model")
    datasets = {
        "validated_documents_train": MemoryDataset(documents.iloc[:36]),
        "validated_documents_validation": MemoryDataset(documents.iloc[36:]),
        "validated_conversations_train": MemoryDataset(conversations),
        "validated_conversations_validation": MemoryDataset(conversations),
        "tokenizer": MemoryDataset(tiny_model),
        "base_model": MemoryDataset(tiny_model),
        "starting_model": StartingModelDataset(None, str(root / "gguf")),
        "finetune_starting_model": StartingModelDataset(None, str(root / "gguf")),
        "passage_index": MemoryDataset(Folder(root / "no-index")),
        "params:retrieval": MemoryDataset(RETRIEVAL_OFF),
        "params:tune": MemoryDataset(tune),
        "params:pretrain": MemoryDataset(parameters["pretrain"]),
        "params:finetune": MemoryDataset(parameters["finetune"]),
        "params:launch": MemoryDataset(parameters["launch"]),
    }
    catalog_config = project_config(root, "tiny")["catalog"]
    outputs = {name: catalog_config[name] for name in ("tuned_parameters", "tuning_trials")}
    catalog = DataCatalog.from_config(outputs)
    for name, dataset in datasets.items():
        catalog[name] = dataset
    return catalog


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_model_dir):
    """The tune pipeline run inside a parent MLflow run, as kedro-mlflow opens one."""
    import mlflow

    root = tmp_path_factory.mktemp("tune_project")
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copytree(tiny_model_dir, root / "tiny_model")
    uri = f"sqlite:///{new_mlflow_store(root)}"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(root)  # the catalog's paths are relative to the project, as in `kedro run`
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # set_experiment exports MLFLOW_EXPERIMENT_ID for subprocesses: undo() removes it again.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("tune-test")
        with mlflow.start_run() as parent:
            SequentialRunner().run(create_pipeline(), search_catalog(root))
        yield root, parent.info.run_id, mlflow.MlflowClient()
    finally:
        mlflow.set_tracking_uri(None)
        monkeypatch.undo()


def trial_runs(client, parent_id: str) -> list:
    parent = client.get_run(parent_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )


def test_every_trial_is_a_nested_run_with_its_own_values(search):
    _, parent_id, client = search
    runs = trial_runs(client, parent_id)
    assert len(runs) == N_TRIALS
    rates = {run.data.params["pretrain.training.learning_rate"] for run in runs}
    assert len(rates) == N_TRIALS
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.metrics["eval_loss"] > 0
        # Rank 0 of the torchrun job logged its own metrics into the trial's run.
        history = client.get_metric_history(run.info.run_id, "pretrain/eval_loss")
        assert history[-1].value == pytest.approx(run.data.metrics["eval_loss"])


def test_the_best_trial_is_the_minimum(search):
    root, parent_id, client = search
    losses = {
        float(run.data.params["pretrain.training.learning_rate"]): run.data.metrics["eval_loss"]
        for run in trial_runs(client, parent_id)
    }
    best_rate = min(losses, key=losses.get)
    parent = client.get_run(parent_id).data
    assert parent.metrics["tune.best_eval_loss"] == pytest.approx(min(losses.values()))
    assert float(parent.params["tune.best.pretrain.training.learning_rate"]) == best_rate
    table = pd.read_csv(root / "data/08_reporting/tuning_trials.csv")
    assert len(table) == N_TRIALS
    assert (table["state"] == "COMPLETE").all()
    assert table["value"].min() == pytest.approx(min(losses.values()))
    artifacts = {item.path for item in client.list_artifacts(parent_id, "tuning")}
    assert artifacts == {"tuning/parameters_tuned.yml", "tuning/tuning_trials.csv"}


def test_the_best_values_merge_into_the_next_runs_parameters(search):
    root, parent_id, client = search
    best_rate = float(
        client.get_run(parent_id).data.params["tune.best.pretrain.training.learning_rate"]
    )
    assert (root / "conf/local/parameters_tuned.yml").exists()
    tuned = project_config(root, "local")["parameters"]
    untuned = project_config(root, "base")["parameters"]
    assert tuned["pretrain"]["training"]["learning_rate"] == pytest.approx(best_rate)
    assert (
        untuned["pretrain"]["training"]["learning_rate"]
        != tuned["pretrain"]["training"]["learning_rate"]
    )
    # Only the searched key changed; the rest of the stage's parameters are conf/base's.
    tuned["pretrain"]["training"].pop("learning_rate")
    untuned["pretrain"]["training"].pop("learning_rate")
    assert tuned["pretrain"] == untuned["pretrain"]
