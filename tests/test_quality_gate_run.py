"""The quality gate on real runs: after the tiny run registered v1 as champion, the evaluate and
register stages run again, as one `kedro run`, in a copy of that project (the tiny env gates on
perplexity): first with the same aligned model (not better beyond its interval: challenger
only), then with a deliberately worse one (the pretrained base model put in the aligned model's
place), which must never become champion.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import copy_of_finished_run, run_command, tool

pytestmark = pytest.mark.slow

NAME = "llm-pipeline"


def run_stages(project: Path, stages: str) -> str:
    command = [tool("kedro"), "run", "--env", "tiny", "--pipelines", stages]
    result = run_command(command, cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def newest(folder: Path) -> Path:
    return sorted(folder.iterdir())[-1]


@pytest.fixture(scope="module")
def gated(finished_tiny_run, tmp_path_factory):
    """The project after the two re-evaluations, and metrics.json after each."""
    from kedro.io.core import generate_timestamp

    project = copy_of_finished_run(finished_tiny_run, tmp_path_factory.mktemp("gate") / "project")
    metrics = []
    for worse in (False, True):
        if worse:
            base = newest(project / "data/06_models/base_model") / "base_model"
            target = project / "data/06_models/aligned_model" / generate_timestamp()
            shutil.copytree(base, target / "aligned_model")
        run_stages(project, "evaluate,register")
        metrics.append(json.loads((project / "data/08_reporting/metrics.json").read_text()))
    return project, metrics


@pytest.fixture
def client(gated, monkeypatch):
    from mlflow import MlflowClient

    project, _ = gated
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.chdir(project)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_the_champion_is_evaluated_beside_the_new_models(gated):
    _, (same, _) = gated

    assert {"base", "sft", "aligned", "champion"} <= set(same)
    compared = same["comparisons"]["aligned_vs_champion"]["perplexity"]
    # The same model as the champion: no difference at all.
    assert compared["difference"] == 0.0
    assert compared["significant"] is False


def test_a_model_no_better_than_the_champion_stays_challenger(client):
    second = client.get_model_version(NAME, "2")

    assert second.tags["promotion.decision"] == "challenger only"
    assert "within its interval" in second.tags["promotion.reason"]
    assert second.tags["promotion.previous_champion"] == "1"


def test_a_worse_model_is_registered_but_never_promoted(gated, client):
    _, (_, worse) = gated
    third = client.get_model_version(NAME, "3")

    compared = worse["comparisons"]["aligned_vs_champion"]["perplexity"]
    assert compared["better"] is False
    assert third.tags["promotion.decision"] == "challenger only"
    assert "worse" in third.tags["promotion.reason"]
    assert int(client.get_model_version_by_alias(NAME, "champion").version) == 1
    assert int(client.get_model_version_by_alias(NAME, "challenger").version) == 3
