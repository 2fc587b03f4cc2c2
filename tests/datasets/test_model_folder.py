"""Tests for ModelFolder and ModelFolderDataset: folders moved into place, one version per run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from kedro.io import DatasetError
from kedro.io.core import Version

from llm_pipeline.datasets import ModelFolder, ModelFolderDataset
from llm_pipeline.training.jobs import RUN_CONFIG_FILE


def fake_model_folder(path: Path, marker: str) -> ModelFolder:
    """A folder shaped like a Hugging Face model; ``marker`` tells two of them apart."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"marker": marker}), encoding="utf-8")
    (path / "model.safetensors").write_bytes(b"weights " + marker.encode())
    return ModelFolder(path)


def test_save_moves_the_source_folder_into_place(tmp_path):
    source = fake_model_folder(tmp_path / "work" / "sft_output", "first")
    target = tmp_path / "06_models" / "sft_model"

    ModelFolderDataset(str(target)).save(source)

    assert not source.path.exists()
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert ModelFolder(target).read_json("config.json") == {"marker": "first"}


def test_save_replaces_an_existing_target_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "06_models" / "sft_model"
    dataset = ModelFolderDataset(str(target))
    dataset.save(fake_model_folder(tmp_path / "run1", "first"))
    (target / "stale_file.bin").write_bytes(b"from the first run")

    dataset.save(fake_model_folder(tmp_path / "run2", "second"))

    assert dataset.load().read_json("config.json") == {"marker": "second"}
    assert not (target / "stale_file.bin").exists()
    assert [p.name for p in target.parent.iterdir()] == ["sft_model"]


def test_save_refuses_anything_but_a_model_folder(tmp_path):
    dataset = ModelFolderDataset(str(tmp_path / "model"))

    with pytest.raises(DatasetError, match="Expected a Folder, got str"):
        dataset.save(str(tmp_path / "somewhere"))


def test_load_returns_a_handle_on_the_folder(tmp_path):
    target = tmp_path / "base_model"
    ModelFolderDataset(str(target)).save(fake_model_folder(tmp_path / "out", "base"))

    loaded = ModelFolderDataset(str(target)).load()

    assert loaded == ModelFolder(target)


def test_load_accepts_a_tokenizer_only_folder(tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")

    assert ModelFolderDataset(str(folder)).load().path == folder


@pytest.mark.parametrize("create", [True, False], ids=["empty-folder", "missing-folder"])
def test_load_without_model_files_names_the_path(tmp_path, create):
    folder = tmp_path / "sft_model"
    if create:
        folder.mkdir()
        (folder / "README.md").write_text("not a model", encoding="utf-8")

    with pytest.raises(DatasetError, match="no Hugging Face model or tokenizer") as error:
        ModelFolderDataset(str(folder)).load()

    assert str(folder) in str(error.value)


def test_a_model_its_stage_did_not_train_saves_and_loads_with_the_reason(tmp_path):
    dataset = ModelFolderDataset(str(tmp_path / "reward_model"), version=Version(None, None))

    dataset.save(ModelFolder.untrained(tmp_path / "staged", "align.method is dpo"))

    loaded = dataset.load()
    assert loaded.not_trained == "align.method is dpo"
    assert fake_model_folder(tmp_path / "model", "trained").not_trained is None


def test_versioned_saves_keep_every_version_and_load_the_latest(tmp_path):
    root = tmp_path / "sft_model"
    dataset = ModelFolderDataset(str(root), version=Version(None, None))
    assert not dataset.exists()

    dataset.save(fake_model_folder(tmp_path / "run1", "first"))
    # Versions are millisecond timestamps; two saves in the same millisecond would collide.
    time.sleep(0.01)
    dataset.save(fake_model_folder(tmp_path / "run2", "second"))

    versions = sorted(p.name for p in root.iterdir())
    assert len(versions) == 2
    assert all((root / v / "sft_model" / "config.json").is_file() for v in versions)
    assert dataset.exists()
    latest = ModelFolderDataset(str(root), version=Version(None, None)).load()
    assert latest.path == root / versions[1] / "sft_model"
    assert latest.read_json("config.json") == {"marker": "second"}
    older = ModelFolderDataset(str(root), version=Version(versions[0], None)).load()
    assert older.read_json("config.json") == {"marker": "first"}


def test_versioned_load_without_any_version_fails(tmp_path):
    dataset = ModelFolderDataset(str(tmp_path / "sft_model"), version=Version(None, None))

    with pytest.raises(DatasetError, match="Did not find any versions"):
        dataset.load()


def test_read_run_config_reads_the_config_saved_with_the_model(tmp_path):
    folder = fake_model_folder(tmp_path / "sft_model", "sft")
    config = {"sft": {"learning_rate": 0.0002, "num_train_epochs": 3}, "method": "lora"}
    (folder.path / RUN_CONFIG_FILE).write_text(yaml.safe_dump(config), encoding="utf-8")

    assert folder.read_run_config() == config


def test_read_run_config_is_empty_for_a_folder_made_elsewhere(tmp_path):
    folder = fake_model_folder(tmp_path / "downloaded", "hub")

    assert folder.read_run_config() == {}
