"""Where the starting model comes from: pretrained, local folder, package file, hub id."""

from __future__ import annotations

import pytest

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.datasets.starting_model import package_file
from llm_pipeline.pipelines.finetune.nodes import choose_starting_model

CACHE = {"gguf_cache_dir": "~/.cache/llm-pipeline/gguf"}


def test_no_base_model_means_the_pretrained_one_by_absolute_path(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tiny_model_dir.parent)
    chosen = choose_starting_model(
        ModelFolder(tiny_model_dir.relative_to(tiny_model_dir.parent)),
        {**CACHE, "base_model": None},
    )
    assert chosen.path == tiny_model_dir.resolve()
    assert chosen.path.is_absolute()


def test_a_local_folder_is_used_as_it_is(tiny_model_dir, tmp_path):
    chosen = choose_starting_model(
        ModelFolder(tmp_path), {**CACHE, "base_model": str(tiny_model_dir)}
    )
    assert chosen.path == tiny_model_dir.resolve()


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face model folder"):
        choose_starting_model(ModelFolder(tmp_path), {**CACHE, "base_model": str(tmp_path)})


def test_a_package_file_is_found_without_importing_the_package():
    found = package_file("llm_pipeline", "settings.py")
    assert found.name == "settings.py" and found.is_file()
    with pytest.raises(FileNotFoundError, match="must match exactly one"):
        package_file("llm_pipeline", "*/*.py")
    with pytest.raises(ModuleNotFoundError, match="no_such_package_here"):
        package_file("no_such_package_here", "*.gguf")


def test_a_base_model_mapping_takes_package_and_file_only(tmp_path):
    with pytest.raises(ValueError, match="exactly 'package' and 'file'"):
        choose_starting_model(ModelFolder(tmp_path), {**CACHE, "base_model": {"package": "x"}})


def test_an_unreachable_hub_id_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = {**CACHE, "base_model": "nobody-here/no-such-model-xyz"}
    with pytest.raises(RuntimeError, match="taken for a Hugging Face Hub id, which could not"):
        choose_starting_model(ModelFolder(tmp_path), params)


def test_a_path_that_is_neither_here_nor_a_hub_id_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist here"):
        choose_starting_model(
            ModelFolder(tmp_path), {**CACHE, "base_model": "./missing/model.gguf"}
        )
