"""Shared fixtures: the sample data set, generated once per session."""

from __future__ import annotations

from pathlib import Path

# Kedro configures logging when kedro.framework.project is first imported (conf/logging.yml
# replaces the root logger's handlers, and with them a running test's log capture): once here,
# before any test, not in whichever test first reads the configuration.
import kedro.framework.project  # noqa: F401
import pytest
from support import build_tiny_model, copy_project, run_command, tool

from llm_pipeline.tools.sample_data import generate


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


@pytest.fixture(scope="session")
def finished_tiny_run(small_raw_data, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the project after `kedro run --env tiny` (minutes), and the run's output:
    shared by the end-to-end tests, which only read what the run made."""
    project = copy_project(tmp_path_factory.mktemp("project"), small_raw_data)
    result = run_command([tool("kedro"), "run", "--env", "tiny"], cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, result.stdout + result.stderr
