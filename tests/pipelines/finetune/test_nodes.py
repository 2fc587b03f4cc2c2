"""Where the fine-tuned model comes from: the pretrain stage's, or one the catalog resolves
(``finetune_starting_model``: local folder, package file, hub id) before the node runs."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.datasets.starting_model import StartingModelDataset, package_file
from llm_pipeline.pipelines.finetune.nodes import choose_starting_model

CACHE = "~/.cache/llm-pipeline/gguf"


def named(source) -> ModelFolder | None:
    """What the catalog's finetune_starting_model hands the node for ``source``."""
    return StartingModelDataset(source, CACHE).load()


def test_no_named_model_means_the_pretrained_one_by_absolute_path(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tiny_model_dir.parent)
    chosen = choose_starting_model(
        ModelFolder(tiny_model_dir.relative_to(tiny_model_dir.parent)), named(None)
    )
    assert chosen.path == tiny_model_dir.resolve()
    assert chosen.path.is_absolute()


def test_a_named_local_folder_is_used_as_it_is_by_absolute_path(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tiny_model_dir.parent)
    chosen = choose_starting_model(ModelFolder(tmp_path), named(tiny_model_dir.name))
    assert chosen.path == tiny_model_dir.resolve()


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="neither a Hugging Face model folder"):
        named(str(tmp_path))


def test_a_package_file_is_found_without_importing_the_package():
    found = package_file("llm_pipeline", "settings.py")
    assert found.name == "settings.py" and found.is_file()
    with pytest.raises(FileNotFoundError, match="must match exactly one"):
        package_file("llm_pipeline", "*/*.py")
    with pytest.raises(ModuleNotFoundError, match="no_such_package_here"):
        package_file("no_such_package_here", "*.gguf")


def test_a_model_mapping_takes_package_and_file_only():
    with pytest.raises(DatasetError, match="exactly 'package' and 'file'"):
        named({"package": "x"})


def test_an_unreachable_hub_id_fails_with_a_clear_message(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable when first imported, which another test in this
    # process may have done: without this the hub is asked over the network (23 s in the suite).
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match="taken for a Hugging Face Hub id, which could not"):
        named("nobody-here/no-such-model-xyz")


def test_a_path_that_is_neither_here_nor_a_hub_id_is_refused():
    with pytest.raises(DatasetError, match="does not exist here"):
        named("./missing/model.gguf")


def test_the_finetune_stage_reads_its_model_from_the_catalog_not_its_parameters():
    from llm_pipeline.pipelines.finetune.pipeline import create_pipeline

    [node] = create_pipeline().nodes
    assert "finetune_starting_model" in node.inputs
    assert "base_model" in node.inputs
