"""conf/team and the team server script's checks that need no PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT_ROOT, command_environment

from llm_pipeline.cli.team_server import (
    LEGACY_DEFAULT_PASSWORD,
    TeamServerError,
    TeamServerSettings,
    check_password,
    check_port_free,
    project_tracking_targets,
    server_command,
    server_secrets,
    write_auth_config,
)

CONF = PROJECT_ROOT / "conf"


def _team_config(key: str):
    from kedro.config import OmegaConfigLoader

    from llm_pipeline.settings import CONFIG_LOADER_ARGS

    patterns = {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]}
    loader = OmegaConfigLoader(
        str(CONF), env="team", config_patterns=patterns, **CONFIG_LOADER_ARGS
    )
    return loader[key]


def test_the_team_env_tracks_to_the_server_named_by_the_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    server = _team_config("mlflow")["server"]
    assert server["mlflow_tracking_uri"] == "http://127.0.0.1:5001"
    assert server["credentials"] == "mlflow_team"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.invalid")
    assert (
        _team_config("mlflow")["server"]["mlflow_tracking_uri"] == "https://mlflow.example.invalid"
    )


def test_the_credentials_example_is_not_read_as_credentials():
    from kedro.config import MissingConfigException

    if (CONF / "team" / "credentials.yml").exists():
        pytest.skip("this checkout has its own conf/team/credentials.yml")
    with pytest.raises(MissingConfigException):
        _team_config("credentials")


def test_the_credentials_file_is_git_ignored():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "conf/team/credentials.yml"], cwd=PROJECT_ROOT
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0


def test_the_server_prepares_what_the_team_env_writes_to():
    targets = project_tracking_targets("team", CONF)
    assert targets.experiment == _team_config("mlflow")["tracking"]["experiment"]["name"]
    assert targets.registered_models == (_team_config("globals")["registered_model_name"],)


@pytest.mark.parametrize(
    ("password", "message"),
    [(LEGACY_DEFAULT_PASSWORD, "old default password"), ("short", "needs at least 12")],
)
def test_weak_passwords_are_refused_naming_their_source(password, message):
    with pytest.raises(TeamServerError, match=message) as error:
        check_password(password, "The environment variable MLFLOW_ADMIN_PASSWORD")
    assert "MLFLOW_ADMIN_PASSWORD" in str(error.value)


def test_secrets_come_from_the_environment_or_private_files_made_once(tmp_path):
    settings = TeamServerSettings(state_dir=tmp_path / "state")
    first = server_secrets(settings, {"MLFLOW_ADMIN_PASSWORD": "from-the-environment"})
    assert first["admin"] == "from-the-environment"
    assert not (tmp_path / "state/admin_password").exists()
    pipeline_file = tmp_path / "state/pipeline_password"
    assert pipeline_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    again = server_secrets(settings, {})
    assert again["pipeline"] == first["pipeline"] == pipeline_file.read_text().strip()
    assert again["admin"] != "from-the-environment"  # generated and kept this time
    assert again["flask_key"] == first["flask_key"]


def test_the_auth_config_names_its_own_database_and_no_password(tmp_path):
    settings = TeamServerSettings(
        state_dir=tmp_path,
        postgres_url="postgresql://mlflow:db-secret@db.internal:5432/postgres",
        auth_database="team_auth",
    )
    text = write_auth_config(settings).read_text()
    assert "database_uri = postgresql://mlflow:db-secret@db.internal:5432/team_auth" in text
    assert "default_permission = READ" in text
    assert "admin_password" not in text
    # A checked password is trusted for 30 s per worker, not checked (0.1 s of scrypt) again
    # on every request; 0 turns that off.
    assert "auth_cache_ttl_seconds = 30" in text
    off = settings.model_copy(update={"auth_cache_seconds": 0})
    assert "auth_cache_ttl_seconds = 0" in write_auth_config(off).read_text()
    command = " ".join(server_command(settings))
    assert "--app-name basic-auth" in command
    assert "db-secret" not in command  # the store URIs travel by environment, not `ps`


def _run_script(state: Path, **env: str) -> subprocess.CompletedProcess:
    environment = command_environment(**env)
    if "MLFLOW_ADMIN_PASSWORD" not in env:
        environment.pop("MLFLOW_ADMIN_PASSWORD", None)
    return subprocess.run(
        [sys.executable, "-m", "llm_pipeline.cli.team_server", "--state-dir", str(state)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_script_refuses_the_default_admin_password_before_doing_anything(tmp_path):
    result = _run_script(tmp_path / "state", MLFLOW_ADMIN_PASSWORD=LEGACY_DEFAULT_PASSWORD)
    assert result.returncode == 1
    assert "MLFLOW_ADMIN_PASSWORD is MLflow's old default password" in result.stderr
    assert not (tmp_path / "state").exists()


def test_the_script_refuses_a_password_file_others_can_read(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin_password").write_text("a-long-enough-password\n")
    (state / "admin_password").chmod(0o644)
    result = _run_script(state)
    assert result.returncode == 1
    assert "is readable by other users (mode 644): run `chmod 600" in result.stderr


def test_a_taken_port_is_refused_before_starting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = TeamServerSettings(port=taken.getsockname()[1])
        with pytest.raises(TeamServerError, match=r"already listens on 127\.0\.0\.1"):
            check_port_free(settings)
