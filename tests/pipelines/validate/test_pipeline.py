"""The validate pipeline over an in-memory catalog: the report is saved even when the gate stops."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from support import parameters_of

from llm_pipeline.datasets import FolderDataset
from llm_pipeline.pipelines.validate import create_pipeline
from llm_pipeline.pipelines.validate.nodes import DataContractError
from llm_pipeline.pipelines.validate.pipeline import DATASETS

PARAMS = {
    "min_rows": {},
    "document_chars": {"min": 5, "max": 1000},
    "message_chars": {"min": 1, "max": 500},
    "examples_per_failure": 3,
}


def catalog_with(frames: dict[str, pd.DataFrame], report_path) -> DataCatalog:
    datasets = {f"ingested_{name}": MemoryDataset(frame) for name, frame in frames.items()}
    datasets["params:validate"] = MemoryDataset(PARAMS)
    datasets["params:ingest.leakage"] = MemoryDataset(
        {"ngram": 13, "fields": ["prompt"], "min_words": 8}
    )
    datasets["params:ingest.pii"] = MemoryDataset(parameters_of("ingest.pii", keep=[]))
    datasets["ingest_accounting"] = MemoryDataset(
        pd.DataFrame({"source": ["a.jsonl"], "balanced": [True]})
    )
    datasets["data_docs"] = FolderDataset(str(report_path.parent / "data_docs"))
    # On disk, as in the project's catalog: a memory dataset is released once consumed.
    datasets["validation_report"] = JSONDataset(filepath=str(report_path))
    return DataCatalog(datasets=datasets)


def frames() -> dict[str, pd.DataFrame]:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    conversations = pd.DataFrame({"id": ["c1"], "messages": [turns]})
    preferences = pd.DataFrame(
        {"id": ["p1"], "prompt": ["q"], "chosen": ["good"], "rejected": ["bad"]}
    )
    return {
        "documents_train": pd.DataFrame({"id": ["d1"], "text": ["Some document text."]}),
        "documents_validation": pd.DataFrame({"id": ["d2"], "text": ["Other document."]}),
        "conversations_train": conversations,
        "conversations_validation": conversations,
        "preferences_train": preferences,
        "preferences_validation": preferences,
        "validation_set": pd.DataFrame({"id": ["v1"], "prompt": ["q"], "reference": ["a"]}),
    }


def test_passing_contracts_hand_every_dataset_on(tmp_path):
    catalog = catalog_with(frames(), tmp_path / "report.json")
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    for name in DATASETS:
        assert outputs[f"validated_{name}"].load().equals(frames()[name])
    assert catalog.load("validation_report")["success"] is True
    assert (tmp_path / "data_docs" / "index.html").exists()


def test_a_failing_contract_stops_the_run_after_saving_the_report(tmp_path):
    broken = frames()
    broken["validation_set"] = pd.DataFrame({"id": ["v1"], "prompt": ["q"], "reference": [None]})
    catalog = catalog_with(broken, tmp_path / "report.json")
    with pytest.raises(DataContractError, match="validation_set"):
        SequentialRunner().run(create_pipeline(), catalog)
    report = catalog.load("validation_report")
    assert report["success"] is False
    assert not catalog.exists("validated_documents_train")
