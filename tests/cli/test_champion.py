"""Approving and rolling back champion in a real MLflow registry (SQLite in a temporary folder).

The functions take an ``MlflowClient`` bound to the store, so no global MLflow state changes;
the command itself runs once as a user types it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import new_mlflow_store

from llm_pipeline.cli.champion import RegistryError, approve, champion_version, rollback

NAME = "llm-pipeline"


@pytest.fixture
def client(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{new_mlflow_store(tmp_path)}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(NAME)
    # Versions here only carry aliases and tags: their source is a folder with no model in it.
    client.test_uri, client.test_source = uri, str(tmp_path / "artifacts")
    return client


def add_version(client, **tags: str) -> int:
    version = client.create_model_version(NAME, source=client.test_source, tags=tags)
    return int(version.version)


def promoted(client, previous: int | None = None) -> int:
    version = add_version(
        client,
        **{
            "promotion.decision": "champion",
            "promotion.eligible": "true",
            "promotion.previous_champion": str(previous or "none"),
        },
    )
    client.set_registered_model_alias(NAME, "champion", str(version))
    return version


def test_rollback_returns_champion_to_the_version_it_replaced_and_records_who(client):
    first = promoted(client)
    second = promoted(client, previous=first)

    restored = rollback(client, NAME, None, "alice")

    assert restored == first
    assert champion_version(client, NAME) == first
    assert (
        client.get_model_version(NAME, str(second))
        .tags["promotion.rolled_back"]
        .startswith("by alice at ")
    )
    assert "replacing v2" in client.get_model_version(NAME, str(first)).tags["promotion.restored"]


def test_rollback_of_the_first_champion_needs_a_target(client):
    promoted(client)

    with pytest.raises(RegistryError, match="replaced no earlier champion"):
        rollback(client, NAME, None, "alice")


def test_rollback_to_a_named_version(client):
    first = promoted(client)
    promoted(client, previous=first)
    third = promoted(client, previous=2)

    assert rollback(client, NAME, first, "bob") == first
    assert champion_version(client, NAME) == first
    assert "promotion.rolled_back" in client.get_model_version(NAME, str(third)).tags


def test_approval_makes_a_waiting_version_champion_and_keeps_the_way_back(client):
    first = promoted(client)
    waiting = add_version(
        client,
        **{"promotion.eligible": "true", "promotion.approval": "pending"},
    )

    previous = approve(client, NAME, waiting, "carol")

    assert previous == first
    assert champion_version(client, NAME) == waiting
    tags = client.get_model_version(NAME, str(waiting)).tags
    assert tags["promotion.approval"].startswith("approved by carol at ")
    assert tags["promotion.previous_champion"] == str(first)
    assert rollback(client, NAME, None, "carol") == first


def test_a_version_that_failed_the_gate_cannot_be_approved(client):
    first = promoted(client)
    worse = add_version(
        client,
        **{
            "promotion.eligible": "false",
            "promotion.reason": "similarity -0.05 [-0.07, -0.03] against champion v1: worse",
        },
    )

    with pytest.raises(RegistryError, match=r"did not pass the quality gate.*worse"):
        approve(client, NAME, worse, "carol")
    assert champion_version(client, NAME) == first


def test_the_rollback_command_as_the_readme_gives_it(client):
    first = promoted(client)
    promoted(client, previous=first)
    env = {**os.environ, "MLFLOW_TRACKING_URI": client.test_uri}

    result = subprocess.run(
        [sys.executable, "-m", "llm_pipeline.cli.champion", "rollback", "--by", "dave"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "champion is v1 again" in result.stderr
    assert champion_version(client, NAME) == first
