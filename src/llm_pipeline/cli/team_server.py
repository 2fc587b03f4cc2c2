"""The team's MLflow tracking server: PostgreSQL stores, a shared artifact store, basic auth.

    make server        # or: python -m llm_pipeline.cli.team_server --port 5001

Creates the tracking and auth databases when missing, upgrades the tracking database's schema
when an MLflow upgrade left it behind (as ``mlflow db upgrade`` does), keeps its secrets in 0600
files under ``conf/local/team_server/`` unless the environment gives them
(``MLFLOW_ADMIN_PASSWORD``, ``MLFLOW_PIPELINE_PASSWORD``), starts ``mlflow server --app-name
basic-auth`` and reports it ready only once MLflow's old default admin password works for
nobody, the configured admin password does, and the ``pipeline`` user that ``kedro run --env
team`` logs in as owns the project's experiment and registered model. conf/team/README.md
explains the setup.
"""

from __future__ import annotations

import argparse
import configparser
import io
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

# The admin password that MLflow's basic_auth.ini shipped before 3.x hardened it: public, so
# no account of ours may keep it.
LEGACY_DEFAULT_PASSWORD = "password1234"
# MLflow's auth store refuses shorter passwords.
MIN_PASSWORD_LENGTH = 12
READY_MESSAGE = "MLflow team server ready at"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
API = "/api/2.0/mlflow"


class TeamServerError(RuntimeError):
    """The server cannot be started or trusted as configured; the message says what to do."""


class TeamServerSettings(BaseModel):
    """Where the server keeps its data and how it is reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    postgres_url: str = DEFAULT_POSTGRES_URL
    tracking_database: str = "llm_pipeline_mlflow"
    auth_database: str = "llm_pipeline_mlflow_auth"
    artifacts_destination: str = "./mlartifacts"
    host: str = "127.0.0.1"
    port: int = 5001
    workers: int = 2
    state_dir: Path = Path("conf/local/team_server")
    kedro_env: str = "team"
    admin_username: str = "admin"
    pipeline_username: str = "pipeline"
    default_permission: str = "READ"
    # Seconds a worker keeps a verified user and password (MLflow's auth_cache_ttl_seconds):
    # checking a password costs the server 0.1 s of CPU (scrypt) on every request otherwise.
    # A password changed or a user deleted through one worker stays valid on the others for
    # at most this long. 0: every request is checked against the auth database.
    auth_cache_seconds: int = Field(default=30, ge=0)
    startup_timeout: float = 300.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def database_uri(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.postgres_url).set(database=database).render_as_string(False)


# --- PostgreSQL ----------------------------------------------------------------------------


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def ensure_database(postgres_url: str, database: str) -> bool:
    """Create ``database`` on the server behind ``postgres_url`` unless it exists; True if new."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).first()
            if found:
                return False
            quoted = engine.dialect.identifier_preparer.quote(database)
            try:
                connection.execute(text(f"CREATE DATABASE {quoted}"))
            except ProgrammingError as error:  # another start created it meanwhile
                if "already exists" not in str(error):
                    raise
                return False
            return True
    except OperationalError as error:
        raise TeamServerError(
            f"Cannot reach PostgreSQL at {_redacted(postgres_url)}: {error.orig}. Start "
            "PostgreSQL, or set MLFLOW_POSTGRES_URL to a server and database this user may "
            "connect to (e.g. postgresql://user:password@host:5432/postgres)."
        ) from error
    finally:
        engine.dispose()


def upgrade_tracking_schema(database_uri: str) -> tuple[str, str] | None:
    """Bring the tracking database's schema up to this MLflow's when it is behind, as
    ``mlflow db upgrade`` does: after an MLflow upgrade the server refuses an older schema and
    does not start. Returns (from, to) revisions when it upgraded; an empty database is left to
    the server, which creates it. (The auth database migrates itself when the server opens it.)
    """
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from mlflow.store.db import utils
    from mlflow.version import VERSION

    engine = utils.create_sqlalchemy_engine_with_retry(database_uri)
    try:
        if utils._is_empty_database(engine):
            return None
        current, head = utils._get_schema_version(engine), utils._get_latest_schema_revision()
        if current == head:
            return None
        where = f"The tracking database {_redacted(database_uri)}"
        try:
            known = current is not None and ScriptDirectory.from_config(
                utils._get_alembic_config("")
            ).get_revision(current)
        except CommandError:
            known = False
        if not known:
            raise TeamServerError(
                f"{where} has schema revision {current}, which MLflow {VERSION} does not know: "
                "it was made by a newer MLflow (install that one again) or is no MLflow "
                "database."
            )
        logger.warning(
            "%s has schema revision %s, older than MLflow %s's %s: upgrading it (as `mlflow db "
            "upgrade` does; keep a backup, migrations are not always transactional)",
            where,
            current,
            VERSION,
            head,
        )
        utils._upgrade_db(engine)
        logger.warning("Upgraded the tracking schema from revision %s to %s", current, head)
        return current, head
    finally:
        engine.dispose()


# --- Secrets -------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user alone (0600), in a 0700 folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def check_password(password: str, source: str) -> str:
    """Refuse MLflow's public default and passwords MLflow would refuse later, naming the source."""
    if password == LEGACY_DEFAULT_PASSWORD:
        raise TeamServerError(
            f"{source} is MLflow's old default password '{LEGACY_DEFAULT_PASSWORD}', which is "
            "public: choose another one."
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise TeamServerError(
            f"{source} has {len(password)} characters; MLflow needs at least "
            f"{MIN_PASSWORD_LENGTH}: choose a longer one."
        )
    return password


def stored_secret(path: Path, what: str, show: bool = True) -> str:
    """The secret kept in ``path``, or a new one saved there (0600).

    A new password is logged once, with the file that keeps it: the only time it is shown.
    """
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise TeamServerError(
                f"{path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`."
            )
        return check_password(path.read_text(encoding="utf-8").strip(), str(path))
    secret = secrets.token_urlsafe(24)
    write_private(path, secret + "\n")
    if show:
        logger.warning("Generated the %s: %s (kept in %s, mode 0600)", what, secret, path)
    return secret


def server_secrets(settings: TeamServerSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The admin and pipeline passwords (environment first, then the state folder's files) and
    the key that signs the UI's CSRF tokens."""
    found = {}
    for name, variable in (
        ("admin", "MLFLOW_ADMIN_PASSWORD"),
        ("pipeline", "MLFLOW_PIPELINE_PASSWORD"),
    ):
        if environ.get(variable):
            found[name] = check_password(environ[variable], f"The environment variable {variable}")
        else:
            found[name] = stored_secret(settings.state_dir / f"{name}_password", f"{name} password")
    found["flask_key"] = environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or stored_secret(
        settings.state_dir / "flask_secret_key", "UI session key", show=False
    )
    return found


# --- The server process --------------------------------------------------------------------


def write_auth_config(settings: TeamServerSettings) -> Path:
    """MLflow's basic_auth.ini with its own database. The admin password goes to the server by
    environment variable, so no file holds it but the 0600 one it came from."""
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": settings.default_permission,
        "database_uri": settings.database_uri(settings.auth_database),
        "admin_username": settings.admin_username,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(settings.auth_cache_seconds),
    }
    text = io.StringIO()
    config.write(text)
    path = settings.state_dir / "basic_auth.ini"
    write_private(path, text.getvalue())
    return path


def server_command(settings: TeamServerSettings) -> list[str]:
    destination = settings.artifacts_destination
    if "://" not in destination:
        destination = str(Path(destination).resolve())
    return [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--artifacts-destination",
        destination,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
    ]


def server_environment(
    settings: TeamServerSettings,
    auth_config: Path,
    passwords: dict[str, str],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """The server's environment: database URIs (they may hold a password, so not on the command
    line, where `ps` shows them) and the auth settings."""
    env = dict(environ)
    env.update(
        MLFLOW_BACKEND_STORE_URI=settings.database_uri(settings.tracking_database),
        MLFLOW_AUTH_CONFIG_PATH=str(auth_config.resolve()),
        MLFLOW_AUTH_ADMIN_USERNAME=settings.admin_username,
        MLFLOW_AUTH_ADMIN_PASSWORD=passwords["admin"],
        MLFLOW_FLASK_SERVER_SECRET_KEY=passwords["flask_key"],
    )
    for variable in (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_PIPELINE_PASSWORD",
    ):
        env.pop(variable, None)
    return env


def check_port_free(settings: TeamServerSettings) -> None:
    """Refuse a taken port: the health check would otherwise find the server already there."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((settings.host, settings.port)) == 0:
            raise TeamServerError(
                f"Something already listens on {settings.host}:{settings.port} (a server "
                "started earlier?): stop it, or choose another port (make server MLFLOW_PORT=…)."
            )


def start_server(settings: TeamServerSettings, env: dict[str, str]) -> subprocess.Popen:
    """``mlflow server`` in a session of its own, so that stopping it stops its workers too."""
    check_port_free(settings)
    process = subprocess.Popen(server_command(settings), env=env, start_new_session=True)
    write_private(settings.state_dir / "server.pid", f"{process.pid}\n")
    return process


def stop_server(process: subprocess.Popen, settings: TeamServerSettings) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    (settings.state_dir / "server.pid").unlink(missing_ok=True)


def wait_until_healthy(process: subprocess.Popen, settings: TeamServerSettings) -> None:
    import requests

    deadline = time.monotonic() + settings.startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TeamServerError(
                f"mlflow server exited with code {process.returncode} before answering on "
                f"{settings.url}: its log above says why."
            )
        try:
            if requests.get(f"{settings.url}/health", timeout=5).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise TeamServerError(
        f"mlflow server did not answer on {settings.url}/health within "
        f"{settings.startup_timeout:.0f} s: is the port taken, or the machine very busy?"
    )


# --- Accounts through the auth REST API ----------------------------------------------------


def call_api(
    settings: TeamServerSettings,
    method: str,
    endpoint: str,
    auth: tuple[str, str] | None,
    **kwargs: Any,
) -> Any:
    import requests

    url = f"{settings.url}{API}/{endpoint}"
    return requests.request(method, url, auth=auth, timeout=60, **kwargs)


def verify_admin(settings: TeamServerSettings, password: str) -> None:
    """The configured admin password must work: the admin may predate this configuration."""
    answer = call_api(settings, "GET", "users/current", (settings.admin_username, password))
    if answer.status_code != 200 or not answer.json()["user"]["is_admin"]:
        raise TeamServerError(
            f"The admin user '{settings.admin_username}' of database "
            f"'{settings.auth_database}' does not accept the configured admin password "
            f"(HTTP {answer.status_code}): it was created earlier with another one. Set "
            "MLFLOW_ADMIN_PASSWORD to its current password (or put it in "
            f"{settings.state_dir / 'admin_password'})."
        )


def users_with_default_password(settings: TeamServerSettings) -> list[str]:
    """Accounts of the auth database that MLflow's public default password opens, checked in the
    store itself: the server refuses such admin logins, which hides whether the password stays."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(settings.database_uri(settings.auth_database))
    try:
        candidates = dict.fromkeys([settings.admin_username, "admin", settings.pipeline_username])
        return [
            name
            for name in candidates
            if store.authenticate_user(name, LEGACY_DEFAULT_PASSWORD, use_primary=True)
        ]
    finally:
        store.engine.dispose()


def ensure_pipeline_user(settings: TeamServerSettings, passwords: dict[str, str]) -> None:
    """The non-admin account of pipeline runs, with the configured password."""
    admin = (settings.admin_username, passwords["admin"])
    user = {"username": settings.pipeline_username, "password": passwords["pipeline"]}
    created = call_api(settings, "POST", "users/create", admin, json=user)
    if created.status_code == 200:
        logger.info("Created user '%s' for pipeline runs", settings.pipeline_username)
        return
    if "RESOURCE_ALREADY_EXISTS" not in created.text:
        raise TeamServerError(
            f"Creating user '{settings.pipeline_username}' failed (HTTP "
            f"{created.status_code}): {created.text[:300]}"
        )
    updated = call_api(settings, "PATCH", "users/update-password", admin, json=user)
    if updated.status_code != 200:
        raise TeamServerError(
            f"Setting the password of '{settings.pipeline_username}' failed (HTTP "
            f"{updated.status_code}): {updated.text[:300]}"
        )


class TrackingTargets(BaseModel):
    """What ``kedro run --env <env>`` writes to: one experiment and the registered models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str
    registered_models: tuple[str, ...]


def project_tracking_targets(kedro_env: str, conf_source: Path = Path("conf")) -> TrackingTargets:
    """The experiment and registered models of the project's config for ``kedro_env``."""
    from kedro.config import OmegaConfigLoader

    from llm_pipeline.settings import CONFIG_LOADER_ARGS

    patterns = {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]}
    loader = OmegaConfigLoader(
        str(conf_source), env=kedro_env, config_patterns=patterns, **CONFIG_LOADER_ARGS
    )
    models = {
        entry["registered_model_name"]
        for entry in loader["catalog"].values()
        if isinstance(entry, dict) and str(entry.get("type", "")).endswith("MlflowRegistryDataset")
    }
    return TrackingTargets(
        experiment=loader["mlflow"]["tracking"]["experiment"]["name"],
        registered_models=tuple(sorted(models)),
    )


def ensure_owned_by_pipeline(
    settings: TeamServerSettings, password: str, targets: TrackingTargets
) -> None:
    """Create the experiment and registered models as the pipeline user, who then manages them.

    Made here, once: two first runs at the same time would both create the experiment
    (kedro-mlflow looks it up, then creates it) and the second would fail; and the auth app
    answers a non-admin's look-up of a registered model that does not exist yet with 403
    instead of "not found", which the register stage's champion look-up cannot tell apart
    from a real refusal.
    """
    auth = (settings.pipeline_username, password)
    requests_to_make = [("experiments/create", "experiment", targets.experiment)] + [
        ("registered-models/create", "registered model", name) for name in targets.registered_models
    ]
    for endpoint, kind, name in requests_to_make:
        created = call_api(settings, "POST", endpoint, auth, json={"name": name})
        if created.status_code == 200:
            logger.info("Created %s '%s', managed by '%s'", kind, name, auth[0])
        elif "RESOURCE_ALREADY_EXISTS" not in created.text:
            raise TeamServerError(
                f"Creating {kind} '{name}' as '{auth[0]}' failed (HTTP "
                f"{created.status_code}): {created.text[:300]}"
            )


# --- Putting it together -------------------------------------------------------------------


def prepare(
    settings: TeamServerSettings, environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Databases, secrets and the auth config: the server's environment and the passwords."""
    passwords = server_secrets(settings, environ)  # first: a refused password creates nothing
    for database in (settings.tracking_database, settings.auth_database):
        if ensure_database(settings.postgres_url, database):
            logger.info("Created database %s", database)
    upgrade_tracking_schema(settings.database_uri(settings.tracking_database))
    auth_config = write_auth_config(settings)
    return server_environment(settings, auth_config, passwords, environ), passwords


def make_ready(settings: TeamServerSettings, passwords: dict[str, str]) -> None:
    """Refuse a server that a public password opens; then the pipeline's account and what it
    writes to."""
    verify_admin(settings, passwords["admin"])
    left = users_with_default_password(settings)
    if left:
        raise TeamServerError(
            f"User(s) {left} of database '{settings.auth_database}' still have MLflow's old "
            f"default password '{LEGACY_DEFAULT_PASSWORD}'. Change it with "
            f"`curl -u {settings.admin_username} -X PATCH {settings.url}{API}/users/"
            'update-password -H "Content-Type: application/json" -d '
            '\'{"username": "<user>", "password": "<new password>"}\'` or delete the user.'
        )
    ensure_pipeline_user(settings, passwords)
    targets = project_tracking_targets(settings.kedro_env)
    ensure_owned_by_pipeline(settings, passwords["pipeline"], targets)


def serve(settings: TeamServerSettings, environ: Mapping[str, str]) -> int:
    env, passwords = prepare(settings, environ)
    process = start_server(settings, env)
    try:
        wait_until_healthy(process, settings)
        make_ready(settings, passwords)
        logger.info(
            "%s %s (user '%s'; passwords in %s or the environment). Ctrl-C stops it.",
            READY_MESSAGE,
            settings.url,
            settings.pipeline_username,
            settings.state_dir,
        )
        return process.wait()
    finally:
        stop_server(process, settings)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def parse_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> TeamServerSettings:
    defaults = TeamServerSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument(
        "--artifacts-destination",
        default=defaults.artifacts_destination,
        help="a shared folder, or s3://bucket/path, gs://bucket/path (needs boto3 / google-cloud-"
        "storage and their credentials)",
    )
    parser.add_argument("--tracking-database", default=defaults.tracking_database)
    parser.add_argument("--auth-database", default=defaults.auth_database)
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir)
    parser.add_argument("--kedro-env", default=defaults.kedro_env)
    parser.add_argument("--pipeline-user", default=defaults.pipeline_username)
    parser.add_argument(
        "--auth-cache-seconds",
        type=int,
        default=defaults.auth_cache_seconds,
        help="seconds a worker trusts a checked user and password (0: check every request)",
    )
    args = parser.parse_args(argv)
    return TeamServerSettings(
        postgres_url=environ.get("MLFLOW_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        tracking_database=args.tracking_database,
        auth_database=args.auth_database,
        artifacts_destination=args.artifacts_destination,
        host=args.host,
        port=args.port,
        workers=args.workers,
        state_dir=args.state_dir,
        kedro_env=args.kedro_env,
        pipeline_username=args.pipeline_user,
        auth_cache_seconds=args.auth_cache_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = parse_settings(argv, os.environ)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return serve(settings, os.environ)
    except TeamServerError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
