"""The ingest pipeline over an in-memory catalog, on the small sample data."""

from __future__ import annotations

import json

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from llm_pipeline.datasets import RawFolderDataset
from llm_pipeline.pipelines.ingest import create_pipeline

PARAMS = {
    "unicode_form": "NFC",
    "document_validation_fraction": 0.1,
    "conversation_validation_fraction": 0.1,
    "preference_validation_fraction": 0.1,
    "split_salt": "test",
}


def raw_catalog(root) -> DataCatalog:
    folders = {
        "raw_documents": ("documents", [".txt", ".md", ".jsonl"]),
        "raw_conversations": ("conversations", [".jsonl"]),
        "raw_preferences": ("preferences", [".jsonl"]),
        "raw_validation": ("validation", [".jsonl"]),
    }
    datasets = {
        name: MemoryDataset(RawFolderDataset(str(root / folder), suffixes).load())
        for name, (folder, suffixes) in folders.items()
    }
    datasets["params:ingest"] = MemoryDataset(PARAMS)
    return DataCatalog(datasets=datasets)


def test_ingest_pipeline_accounts_for_every_row(small_raw_data, tmp_path):
    raw = tmp_path / "01_raw"
    import shutil

    shutil.copytree(small_raw_data, raw)
    broken = raw / "conversations" / "broken.jsonl"
    broken.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    catalog = raw_catalog(raw)
    SequentialRunner().run(create_pipeline(), catalog)

    lines_in = sum(
        1
        for path in (raw / "conversations").glob("*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    )
    train = catalog.load("ingested_conversations_train")
    held_out = catalog.load("ingested_conversations_validation")
    quarantine = catalog.load("quarantine")
    conversation_rows = quarantine[quarantine["source"].str.contains("conversations")]
    assert len(train) + len(held_out) + len(conversation_rows) == lines_in
    broken_rules = conversation_rows[conversation_rows["source"].str.endswith("broken.jsonl")]
    assert sorted(broken_rules["rule"]) == ["malformed_json", "schema"]

    validation = catalog.load("ingested_validation_set")
    explicit = [
        json.loads(x)
        for x in (raw / "validation" / "validation_set.jsonl").read_text().splitlines()
    ]
    assert len(validation) == len(explicit)
    training_prompts = {m["content"] for ms in train["messages"] for m in ms if m["role"] == "user"}
    assert not training_prompts & set(validation["prompt"])
    assert len(catalog.load("ingested_documents_train")) > 0
    assert len(catalog.load("ingested_preferences_train")) > 0
