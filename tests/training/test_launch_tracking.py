"""Where a job logs is the caller's choice: the launcher passes on the run it is given, no other."""

from __future__ import annotations

import json
import os

import mlflow
from support import isolated_mlflow, launch_config

from llm_pipeline.training.jobs import RUN_ID_VARIABLE
from llm_pipeline.training.launch import TrackingRun, launch
from llm_pipeline.training.stage_jobs import current_tracking

# A worker that writes down which run and store it was told to log into.
REPORTS_ITS_RUN = f"""
import json, os, sys
out = sys.argv[sys.argv.index("--config") + 1] + ".seen.json"
with open(out, "w") as handle:
    json.dump({{"run": os.environ.get("{RUN_ID_VARIABLE}"),
               "uri": os.environ.get("MLFLOW_TRACKING_URI")}}, handle)
"""


def seen_by_worker(tmp_path, monkeypatch, name: str, tracking: TrackingRun | None) -> dict:
    (tmp_path / "reports_its_run.py").write_text(REPORTS_ITS_RUN)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    launch("reports_its_run", {}, launch_config(), tmp_path / name, tracking=tracking)
    return json.loads((tmp_path / name / "reports_its_run_job.yaml.seen.json").read_text())


def test_the_worker_logs_into_the_run_it_is_given_and_no_other(tmp_path, monkeypatch):
    with isolated_mlflow(tmp_path, monkeypatch) as uri:
        # Set by a job that launched this process: must not leak into the next job.
        monkeypatch.setenv(RUN_ID_VARIABLE, "inherited")
        with mlflow.start_run() as run:
            untracked = seen_by_worker(tmp_path, monkeypatch, "untracked", None)
            given = TrackingRun(tracking_uri=uri, run_id="another-run")
            tracked = seen_by_worker(tmp_path, monkeypatch, "tracked", given)
    # An open run in the calling process is not enough: only what the caller passes counts.
    assert untracked["run"] is None and run.info.run_id != "another-run"
    assert tracked == {"run": "another-run", "uri": uri}


def test_the_kedro_side_passes_on_the_run_kedro_mlflow_opened(tmp_path, monkeypatch):
    with isolated_mlflow(tmp_path, monkeypatch) as uri:
        assert current_tracking() is None
        with mlflow.start_run() as run:
            assert current_tracking() == TrackingRun(tracking_uri=uri, run_id=run.info.run_id)
        assert current_tracking() is None
