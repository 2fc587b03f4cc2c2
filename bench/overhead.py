"""Overhead of the machinery around the work: the default `kedro run` split, stage by stage, into
compute, Kedro's start-up and imports, catalog I/O, tracking and torchrun worker start-up.

    .venv/bin/python bench/overhead.py [--env tiny] [--scale small] [--keep]

Runs ``kedro run --env tiny`` (the whole DAG, ingest to register; ``--env base`` runs conf/base,
which trains for far longer) on the sample data in a temporary copy of the project, with
``LLM_PIPELINE_TIMINGS`` set so that ``llm_pipeline.hooks.RunTimings`` records every node
function, every dataset load and save and every other plugin's hook call. Then:

- compute: the node functions (a training node's torchrun job included);
- Kedro start-up + imports: from starting the process to the first node, less the tracking and
  I/O in between (the CLI, plugins, settings, configuration, the catalog);
- catalog I/O: dataset loads and saves, MLflow datasets excepted;
- tracking: kedro-mlflow's hooks (start and end of the run, parameters) and the MLflow datasets
  (metrics, artifacts, the model registry);
- other hooks (kedro-viz's dataset statistics) and the runner and process exit, the rest;
- torchrun worker start-up, inside compute: from launch to the first step, as rank 0 logs it
  (torchrun, the worker's imports, building model and data).

The MLflow database is created before the timed run: its schema migrations (7-27 s here) are
paid by a project's first run only, and are reported apart.

Prints a table per stage, worker start-up per stage, and as its last line the share of the wall
time that catalog I/O, tracking and Kedro's start-up take (goal: at most 10%). On 2 cores shared
with other jobs (load 1-7) four runs of the tiny env took 147-242 s and gave 6.1%, 8.1%, 13.9%
(an SQLite write that stalled 10 s) and, with the database created in the run, 18.1%. On an idle
machine (load < 1), after the evaluate and register stages grew, it gave 12.5-12.6%: kedro-mlflow
logged each parameter (187) and each evaluation metric (160) in its own SQLite transaction.
Logging them in one request per node and per save (``hooks.BatchedMlflowHook``,
``datasets.MlflowMetricsBatchDataset``) took tracking from 10.5 s to 7.1 s and the share to
10.2-10.5%; creating the model version with its 32 tags in one request took registering from
2.3 s to 1.5 s and the share to 8.5%. What is left: kedro-mlflow's run set-up (2.8 s), then
Kedro's start-up (about 4 s, mostly importing MLflow for the kedro-mlflow plugin).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from llm_pipeline.pipeline_registry import STAGES

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["compute", "catalog I/O", "tracking", "other hooks"]
WORKER_READY = re.compile(
    r"\[(?P<job>\w+)\] .*worker ready (?P<total>[\d.]+) s after launch: "
    r"torchrun (?P<torchrun>[\d.]+) s, "
    r"imports (?P<imports>[\d.]+) s, model and data (?P<model>[\d.]+) s"
)
RUNNING_NODE = re.compile(r"Running node: (?P<node>[\w.-]+):")


def copy_project(target: Path, scale: str) -> Path:
    """The project's code and configuration, with freshly generated sample data."""
    from llm_pipeline.cli.sample_data import generate

    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "local")
    target.mkdir(parents=True)
    for name in ["pyproject.toml", "conf", "src", "dvc.yaml", ".telemetry"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)
    (target / "conf" / "local").mkdir(exist_ok=True)
    generate(target / "data" / "01_raw", scale=scale, seed=13)
    return target


def command_environment(**extra: str) -> dict[str, str]:
    environment = dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        KEDRO_DISABLE_TELEMETRY="1",
        DO_NOT_TRACK="1",
        **extra,
    )
    environment.pop("KEDRO_ENV", None)
    return environment


def create_tracking_database(project: Path) -> float:
    """Seconds to create the MLflow database (schema migrations), which only a project's first
    run pays; done before the timed run so that it measures the runs after."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CREATE_DATABASE],
        cwd=project,
        env=command_environment(),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


CREATE_DATABASE = """
from mlflow import MlflowClient
MlflowClient("sqlite:///mlflow.db").search_experiments()
"""


def run_kedro(project: Path, env: str) -> tuple[float, float, str, list[dict]]:
    """Start, end, output and recorded intervals of ``kedro run --env <env>`` in ``project``."""
    timings = project / "timings.json"
    environment = command_environment(LLM_PIPELINE_TIMINGS=str(timings))
    start = time.time()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--env", env],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
    )
    end = time.time()
    output = result.stdout + result.stderr
    (project / "run.log").write_text(output, encoding="utf-8")
    if result.returncode != 0:
        raise SystemExit(f"kedro run failed ({project / 'run.log'}):\n{output[-3000:]}")
    return start, end, output, json.loads(timings.read_text())


def node_stages(project: Path) -> dict[str, str]:
    """The stage (Kedro pipeline) of every node name."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    return {node.name: stage for stage in STAGES for node in pipelines[stage].nodes}


def worker_startups(output: str, stages: dict[str, str]) -> dict[str, list[dict]]:
    """Each training job's start-up as its rank 0 logged it, by the stage of its node."""
    found: dict[str, list[dict]] = defaultdict(list)
    # Kedro's "Running node:" line names a node without its namespace (the stage).
    stage_of = {name.rpartition(".")[2]: stage for name, stage in stages.items()}
    node = None
    for line in output.splitlines():
        if running := RUNNING_NODE.search(line):
            node = running["node"]
        elif (ready := WORKER_READY.search(line)) and node is not None:
            figures = {k: v if k == "job" else float(v) for k, v in ready.groupdict().items()}
            found[stage_of.get(node, node)].append(figures)
    return found


def is_tracking(interval: dict) -> bool:
    if interval["kind"] == "hook":
        return interval.get("plugin") == "kedro_mlflow"
    return "mlflow" in (interval.get("dataset_type") or "").lower()


def split_time(
    intervals: list[dict], stages: dict[str, str], start: float, end: float
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Seconds per stage and column, and the whole run's own figures."""
    per_stage: dict[str, dict[str, float]] = {
        stage: dict.fromkeys(COLUMNS, 0.0) for stage in STAGES
    }
    run = {"tracking": 0.0, "other hooks": 0.0, "catalog I/O": 0.0}
    first_node = min(i["start"] for i in intervals if i["kind"] == "node")
    before_first_node = 0.0
    for interval in intervals:
        if interval["kind"] == "context_created":
            continue
        seconds = interval["end"] - interval["start"]
        if interval["kind"] == "node":
            column = "compute"
        elif is_tracking(interval):
            column = "tracking"
        elif interval["kind"] == "hook":
            column = "other hooks"
        else:
            column = "catalog I/O"
        stage = stages.get(interval["node"] or "")
        if stage is None:
            run[column] += seconds
        else:
            per_stage[stage][column] += seconds
        if interval["end"] <= first_node:
            before_first_node += seconds
    accounted = sum(map(sum, (f.values() for f in per_stage.values()))) + sum(run.values())
    run["Kedro start-up + imports"] = first_node - start - before_first_node
    context = next(i["start"] for i in intervals if i["kind"] == "context_created")
    run["  of which to the context"] = context - start
    run["runner and exit"] = (end - start) - accounted - run["Kedro start-up + imports"]
    return per_stage, run


def report(
    per_stage: dict[str, dict[str, float]],
    run: dict[str, float],
    workers: dict[str, list[dict]],
    wall: float,
) -> float:
    """Print the tables; return the overhead share in percent."""
    width = len("worker start-up") + 2
    print(f"{'stage':<10}" + "".join(f"{c:>{width}}" for c in [*COLUMNS, "worker start-up"]))
    for stage, figures in per_stage.items():
        startup = sum(job["total"] for job in workers.get(stage, []))
        cells = [f"{figures[c]:>{width}.2f}" for c in COLUMNS]
        cells.append(f"{startup:>{width}.2f}" if stage in workers else f"{'-':>{width}}")
        print(f"{stage:<10}" + "".join(cells))
    print("whole run (not in a node):")
    for name, seconds in run.items():
        print(f"  {name:<26}{seconds:8.2f} s")
    print("torchrun worker start-up, from launch to the first step (inside compute):")
    for stage, jobs in workers.items():
        for job in jobs:
            name = f"{stage} ({job['job']})"
            print(
                f"  {name:<20}{job['total']:6.1f} s = torchrun {job['torchrun']:.1f} s"
                f" + imports {job['imports']:.1f} s + model and data {job['model']:.1f} s"
            )
    io = sum(f["catalog I/O"] for f in per_stage.values()) + run["catalog I/O"]
    tracking = sum(f["tracking"] for f in per_stage.values()) + run["tracking"]
    startup = run["Kedro start-up + imports"]
    compute = sum(f["compute"] for f in per_stage.values())
    print(
        f"wall {wall:.1f} s: compute {compute:.1f} s, Kedro start-up + imports {startup:.1f} s, "
        f"catalog I/O {io:.1f} s, tracking {tracking:.1f} s"
    )
    return 100 * (io + tracking + startup) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="tiny", help="Kedro environment (default: tiny)")
    parser.add_argument("--scale", default="small", help="sample data scale (default: small)")
    parser.add_argument("--keep", action="store_true", help="keep the project copy and its log")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="llm-pipeline-overhead-"))
    try:
        project = copy_project(folder / "project", args.scale)
        database = create_tracking_database(project)
        load = os.getloadavg()[0]
        start, end, output, intervals = run_kedro(project, args.env)
        stages = node_stages(project)
        per_stage, run = split_time(intervals, stages, start, end)
        print(
            f"kedro run --env {args.env} on the {args.scale} sample data, "
            f"{os.cpu_count()} cores, load average {load:.1f} at the start; creating the MLflow "
            f"database before it took {database:.1f} s (a project's first run only, not counted)"
        )
        share = report(per_stage, run, worker_startups(output, stages), end - start)
        if args.keep:
            print(f"kept {folder} (the run's log: project/run.log)")
        print(
            f"catalog I/O + tracking + Kedro start-up: {share:.1f}% of the wall time (goal <= 10%)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
