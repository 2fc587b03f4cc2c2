"""The tests' own helpers where a wrong one would hide a failure: the copied MLflow store."""

from __future__ import annotations

import sqlite3

from support import new_mlflow_store


def _schema(path) -> tuple[dict, list]:
    """Each table's and index's definition, its lines in sorted order (MLflow's migrations write
    a table's constraints in an order that differs between two new stores), and the schema
    revision."""
    with sqlite3.connect(path) as store:
        found = store.execute("SELECT name, sql FROM sqlite_master").fetchall()
        version = store.execute("SELECT version_num FROM alembic_version").fetchall()
    definitions = {
        name: sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
        for name, sql in found
    }
    return definitions, version


def test_a_copied_store_is_the_store_mlflow_makes_in_that_folder(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    made, copied = tmp_path / "made", tmp_path / "copied"
    made.mkdir()
    copied.mkdir()
    monkeypatch.chdir(made)  # MLflow puts a new store's artifacts under the working folder
    MlflowClient(f"sqlite:///{made / 'mlflow.db'}").search_experiments()
    new_mlflow_store(copied)

    assert _schema(copied / "mlflow.db") == _schema(made / "mlflow.db")
    locations = {}
    for folder in (made, copied):
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        (experiment,) = client.search_experiments()
        run = client.create_run(experiment.experiment_id)
        locations[folder] = run.info.artifact_uri
    assert locations[made].startswith(str(made / "mlruns" / "0"))
    assert locations[copied].startswith(str(copied / "mlruns" / "0"))


def test_an_existing_store_is_left_as_it_is(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{new_mlflow_store(tmp_path)}"
    MlflowClient(uri).create_experiment("kept")
    new_mlflow_store(tmp_path)
    assert "kept" in [experiment.name for experiment in MlflowClient(uri).search_experiments()]
