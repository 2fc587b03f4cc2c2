"""Shared fixtures: the sample data set, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import build_tiny_model

from llm_pipeline.sample_data import generate


@pytest.fixture(scope="session")
def small_raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample data set at its small scale, written once per session."""
    root = tmp_path_factory.mktemp("raw") / "01_raw"
    generate(root, scale="small", seed=13)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer Llama folder; shared and read-only: a test that trains or moves a
    model folder builds its own with ``support.build_tiny_model``."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))
