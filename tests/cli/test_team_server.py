"""The team tracking server against a real PostgreSQL on 127.0.0.1:5432: ``make server``'s script
started as a subprocess on a free port, with databases of its own that are dropped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support import (
    PROJECT_ROOT,
    build_tiny_model,
    command_environment,
    copy_project,
    retrieval_config,
    tool,
)

from llm_pipeline.cli.team_server import LEGACY_DEFAULT_PASSWORD, READY_MESSAGE, ensure_database

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
API = "/api/2.0/mlflow"
MODEL_NAME = "llm-pipeline"


def _postgres_listens() -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", 5432)) == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not _postgres_listens(),
        reason="nothing listens on 127.0.0.1:5432: the team server tests need PostgreSQL "
        "(they run in CI)",
    ),
]


@dataclass(frozen=True)
class RunningServer:
    url: str
    state_dir: Path
    artifacts: Path
    auth_database_uri: str
    tracking_database_uri: str
    log: Path
    # The tracking database's schema revision before the start, and this MLflow's head.
    revisions: tuple[str, str]

    def password(self, user: str) -> str:
        return (self.state_dir / f"{user}_password").read_text().strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_uri(name: str) -> str:
    return POSTGRES.rsplit("/", 1)[0] + "/" + name


def _drop_databases(names: list[str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _seed_legacy_admin(auth_database: str) -> None:
    """An auth store as older MLflow versions left it: admin / password1234."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    ensure_database(POSTGRES, auth_database)
    store = SqlAlchemyStore()
    store.init_db(_database_uri(auth_database))
    store.create_user("admin", LEGACY_DEFAULT_PASSWORD, is_admin=True)
    assert store.authenticate_user("admin", LEGACY_DEFAULT_PASSWORD)
    store.engine.dispose()


def _stop(process: subprocess.Popen, state_dir: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    pid_file = state_dir / "server.pid"
    if pid_file.exists():  # the script could not stop its server: end that process group
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)


@contextlib.contextmanager
def _team_server(root: Path, databases: list[str]) -> Iterator[tuple[str, Path]]:
    """``make server``'s script on a free port with these tracking and auth databases, once it
    says it is ready: its URL and its log file. Stopped afterwards, databases kept."""
    state_dir, artifacts, log = root / "state", root / "artifacts", root / "server.log"
    env = command_environment()
    for variable in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_PIPELINE_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(variable, None)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llm_pipeline.cli.team_server",
        "--port",
        str(port),
        "--artifacts-destination",
        str(artifacts),
        "--tracking-database",
        databases[0],
        "--auth-database",
        databases[1],
        "--state-dir",
        str(state_dir),
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 420
        while READY_MESSAGE not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        _stop(process, state_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningServer]:
    """The script started on databases an older MLflow left: a tracking database five schema
    revisions behind, with an experiment in it, and an auth database where admin still has the
    old default password. One start serves every test here (each costs half a minute)."""
    root = tmp_path_factory.mktemp("team_server")
    prefix = f"llm_pipeline_test_{uuid.uuid4().hex[:8]}"
    databases = [f"{prefix}_tracking", f"{prefix}_auth"]
    try:
        revisions = _tracking_database_behind(databases[0], revisions_behind=5)
        _seed_legacy_admin(databases[1])
        with _team_server(root, databases) as (url, log):
            yield RunningServer(
                url,
                root / "state",
                root / "artifacts",
                _database_uri(databases[1]),
                _database_uri(databases[0]),
                log,
                revisions,
            )
    finally:
        _drop_databases(databases)


@pytest.mark.parametrize("auth", [None, ("pipeline", "not-the-password")])
def test_a_request_without_valid_credentials_is_refused(server, auth):
    answer = requests.get(f"{server.url}{API}/experiments/search?max_results=5", auth=auth)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_the_default_admin_password_is_replaced_by_a_private_generated_one(server):
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    legacy = requests.get(f"{server.url}{API}/users/current", auth=("admin", "password1234"))
    assert legacy.status_code == 401
    password = server.password("admin")
    assert password != LEGACY_DEFAULT_PASSWORD and len(password) >= 12
    current = requests.get(f"{server.url}{API}/users/current", auth=("admin", password))
    assert current.status_code == 200 and current.json()["user"]["is_admin"] is True
    # Replaced in the store, not only refused at login.
    store = SqlAlchemyStore()
    store.init_db(server.auth_database_uri)
    assert not store.authenticate_user("admin", LEGACY_DEFAULT_PASSWORD, use_primary=True)
    store.engine.dispose()
    for name in ("admin_password", "pipeline_password", "basic_auth.ini"):
        assert (server.state_dir / name).stat().st_mode & 0o777 == 0o600, name
    assert password not in (server.state_dir / "basic_auth.ini").read_text()


def test_the_pipeline_user_manages_the_experiment_but_is_no_admin(server):
    auth = ("pipeline", server.password("pipeline"))
    me = requests.get(f"{server.url}{API}/users/current", auth=auth).json()["user"]
    assert me["is_admin"] is False
    experiment = requests.get(
        f"{server.url}{API}/experiments/get-by-name",
        params={"experiment_name": MODEL_NAME},
        auth=auth,
    )
    assert experiment.status_code == 200
    new_user = {"username": "mallory", "password": "a-long-enough-password"}
    refused = requests.post(f"{server.url}{API}/users/create", json=new_user, auth=auth)
    assert refused.status_code == 403


def test_the_admin_adds_a_reader_and_grants_her_edit_as_the_readme_says(server):
    admin = ("admin", server.password("admin"))
    alice = ("alice", "at-least-12-characters")
    created = requests.post(
        f"{server.url}/api/2.0/mlflow/users/create",
        json={"username": alice[0], "password": alice[1]},
        auth=admin,
    )
    assert created.status_code == 200, created.text
    listed = requests.get(f"{server.url}{API}/experiments/search?max_results=5", auth=alice)
    assert listed.status_code == 200
    asked = {"username": "alice", "resource_type": "registered_model", "resource_id": MODEL_NAME}
    permission = f"{server.url}/api/3.0/mlflow/users/permissions/get"
    assert requests.get(permission, params=asked, auth=admin).json()["permission"] == "READ"
    granted = requests.post(
        f"{server.url}/api/3.0/mlflow/users/permissions/grant",
        json={**asked, "permission": "EDIT"},
        auth=admin,
    )
    assert granted.status_code == 200, granted.text
    assert requests.get(permission, params=asked, auth=admin).json()["permission"] == "EDIT"


def _project_ready_to_register(root: Path, server: RunningServer, similarity: float) -> Path:
    """A copy of the project holding what the register stage reads, as earlier stages left it,
    and conf/team/credentials.yml with the pipeline user's password."""
    from kedro.io.core import generate_timestamp

    empty_raw, project = root / "raw", root / "project"
    empty_raw.mkdir(parents=True)
    project.mkdir()
    copy_project(project, empty_raw)
    version = generate_timestamp()
    for name in ("base_model", "sft_model", "reward_model", "aligned_model"):
        build_tiny_model(project / "data/06_models" / name / version / name)
    # The passage index the registered model carries (retrieval is on in conf/base).
    from llm_pipeline.retrieval import PassageIndex

    passage = {"id": "p", "source": "returns.md", "title": "Returns", "text": "30 days."}
    config = retrieval_config(top_k=1, max_words=60, lexical_weight=0.0)
    index = project / "data/05_model_input/passage_index" / version / "passage_index"
    PassageIndex.build([passage], None, config).save(index)
    reporting = project / "data/08_reporting"
    reporting.mkdir(parents=True)
    figure = {"value": similarity, "low": similarity - 0.05, "high": similarity + 0.05, "n": 20}
    # The gate's primary metric, better than the base model's beyond its interval.
    beats_base = {
        "difference": 0.3,
        "low": 0.2,
        "high": 0.4,
        "n": 20,
        "significant": True,
        "better": True,
        "greater_is_better": True,
    }
    metrics = {
        "aligned": {"similarity": figure, "answer_accuracy": figure},
        "comparisons": {"aligned_vs_base": {"answer_accuracy": beats_base}},
        "alignment": {},
        "canary": {},
    }
    (reporting / "metrics.json").write_text(json.dumps(metrics))
    report = {"success": True, "datasets": []}
    (reporting / "validation_report.json").write_text(json.dumps(report))
    example = (project / "conf/team/credentials.yml.example").read_text()
    credentials = example.replace("<the pipeline user's password>", server.password("pipeline"))
    (project / "conf/team/credentials.yml").write_text(credentials)
    return project


def test_two_runs_at_once_both_register_their_version(server, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    projects = [
        _project_ready_to_register(tmp_path / f"checkout{i}", server, value)
        for i, value in ((1, 0.21), (2, 0.22))
    ]
    env = command_environment(MLFLOW_TRACKING_URI=server.url)
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(variable, None)  # the credentials come from conf/team/credentials.yml
    command = [tool("kedro"), "run", "--env", "team", "--pipeline", "register"]
    runs = [
        subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for project in projects
    ]
    outputs = [run.communicate(timeout=900)[0].decode() for run in runs]

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password("pipeline"))
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    assert sorted(int(v.version) for v in versions) == [1, 2], "a version was lost"
    assert {float(v.tags["metric.similarity"]) for v in versions} == {0.21, 0.22}
    experiment = client.get_experiment_by_name(MODEL_NAME)
    tracked = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in tracked} == {v.run_id for v in versions}
    # The weights went to the shared artifact store, through the server.
    assert len(list(server.artifacts.rglob("model.safetensors"))) == 2
    # And each run finished cleanly, aliases set, though both set them at the same moment.
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-4000:]
        assert f"Registered {MODEL_NAME} version" in output
    assert {r.info.status for r in client.search_runs([experiment.experiment_id])} == {"FINISHED"}
    for alias in ("challenger", "champion"):
        assert int(client.get_model_version_by_alias(MODEL_NAME, alias).version) in (1, 2)


OLD_EXPERIMENT = "tracked-before-the-upgrade"


def _tracking_database_behind(database: str, revisions_behind: int) -> tuple[str, str]:
    """A tracking database as an older MLflow left it: MLflow's first tables migrated only up to
    the revision ``revisions_behind`` steps before this MLflow's head, with an experiment in it.
    Returns that revision and the head."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from sqlalchemy import create_engine, text

    ensure_database(POSTGRES, database)
    config = utils._get_alembic_config(_database_uri(database))
    head = ScriptDirectory.from_config(config).get_current_head()
    old = head
    for _ in range(revisions_behind):
        old = ScriptDirectory.from_config(config).get_revision(old).down_revision
    engine = create_engine(_database_uri(database))
    InitialBase.metadata.create_all(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, old)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                "creation_time, last_update_time) VALUES (:name, 'file:///old', 'active', 0, 0)"
            ),
            {"name": OLD_EXPERIMENT},
        )
    assert utils._get_schema_version(engine) == old != head
    engine.dispose()
    return old, head


def test_a_tracking_database_of_an_older_mlflow_is_upgraded_on_start(server):
    from mlflow.store.db import utils
    from sqlalchemy import create_engine

    old, head = server.revisions
    admin = ("admin", server.password("admin"))
    found = requests.get(
        f"{server.url}{API}/experiments/get-by-name",
        params={"experiment_name": OLD_EXPERIMENT},
        auth=admin,
    )
    assert found.status_code == 200, found.text
    project = requests.get(
        f"{server.url}{API}/experiments/get-by-name",
        params={"experiment_name": MODEL_NAME},
        auth=("pipeline", server.password("pipeline")),
    )
    assert project.status_code == 200, project.text
    assert f"Upgraded the tracking schema from revision {old} to {head}" in server.log.read_text()
    engine = create_engine(server.tracking_database_uri)
    assert utils._get_schema_version(engine) == head
    engine.dispose()


def test_a_tracking_database_of_a_newer_mlflow_is_refused_by_name(tmp_path):
    from sqlalchemy import create_engine, text

    from llm_pipeline.cli.team_server import TeamServerError, upgrade_tracking_schema

    database = f"llm_pipeline_test_{uuid.uuid4().hex[:8]}_tracking"
    try:
        _tracking_database_behind(database, revisions_behind=1)
        engine = create_engine(_database_uri(database))
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        engine.dispose()
        with pytest.raises(
            TeamServerError, match=r"revision f00dfeedbeef, which MLflow .* not know"
        ):
            upgrade_tracking_schema(_database_uri(database))
    finally:
        _drop_databases([database])
