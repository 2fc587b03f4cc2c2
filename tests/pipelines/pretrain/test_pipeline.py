"""The pretrain pipeline over an in-memory catalog, its model trained by a real torchrun job that
logs into the active MLflow run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from support import PROJECT_ROOT, isolated_mlflow, shop_sentences

from llm_pipeline.datasets import StartingModelDataset
from llm_pipeline.pipelines.pretrain import create_pipeline
from llm_pipeline.settings import CONFIG_LOADER_ARGS

pytestmark = pytest.mark.slow


def tiny_parameters() -> dict:
    conf = str(PROJECT_ROOT / "conf")
    loader = OmegaConfigLoader(conf, **{**CONFIG_LOADER_ARGS, "default_run_env": "tiny"})
    return loader["parameters"]


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    import mlflow

    with isolated_mlflow(tmp_path, monkeypatch):
        yield mlflow.MlflowClient()


def test_the_pipeline_pretrains_and_rank_zero_logs_throughput_into_the_run(
    tracking, tmp_path, monkeypatch
):
    import mlflow

    # The nodes hand folders over in temporary directories and checkpoints go below the working
    # directory: keep both inside this test's folder.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    params = tiny_parameters()
    pretrain = params["pretrain"]
    pretrain["training"].update(max_steps=6, logging_steps=2, eval_steps=3, save_steps=3)
    sentences = shop_sentences()
    documents = pd.DataFrame({"text": [" ".join(sentences[i : i + 6]) for i in range(0, 210, 2)]})
    catalog = DataCatalog(
        datasets={
            "validated_documents_train": MemoryDataset(documents),
            "validated_documents_validation": MemoryDataset(documents.iloc[::4]),
            "starting_model": StartingModelDataset(None, str(tmp_path / "gguf")),
            "params:pretrain": MemoryDataset(pretrain),
            "params:launch": MemoryDataset(params["launch"]),
        }
    )
    with mlflow.start_run() as run:
        outputs = SequentialRunner().run(create_pipeline(), catalog)
    model_dir = Path(outputs["base_model"].load().path)

    history = json.loads((model_dir / "training_log.json").read_text())
    assert [entry["step"] for entry in history if "eval_loss" in entry] == [3, 6]
    assert all(entry["tokens_per_second"] > 0 for entry in history if "loss" in entry)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["vocab_size"] == len(
        json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    )

    logged = tracking.get_run(run.info.run_id).data.metrics
    assert logged["pretrain/tokens_per_second"] > 0
    assert "pretrain/eval_loss" in logged
    # No GPU here, no peak FLOPs given: no MFU rather than a made-up one.
    assert "pretrain/mfu" not in logged
    steps = [
        m.step for m in tracking.get_metric_history(run.info.run_id, "pretrain/tokens_per_second")
    ]
    assert steps == [2, 4, 6]
