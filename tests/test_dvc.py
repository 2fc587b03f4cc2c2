"""DVC: `dvc repro` runs the DAG stage by stage, and a second `dvc repro` does nothing; every
code and config path that dvc.yaml names exists."""

from __future__ import annotations

import json

import pytest
import yaml
from support import PROJECT_ROOT, copy_project, run_command, tool


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_then_nothing(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    for args in (["git", "init", "-q"], [tool("dvc"), "init", "-q"]):
        assert run_command(args, cwd=project).returncode == 0
    run_command([tool("dvc"), "config", "core.analytics", "false"], cwd=project)
    run_command(["git", "add", "-A"], cwd=project)
    assert run_command(["git", "commit", "-qm", "project"], cwd=project).returncode == 0

    first = run_command([tool("dvc"), "repro"], cwd=project, KEDRO_ENV="tiny")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("ingest", "validate", "pretrain", "finetune", "align", "evaluate", "register"):
        assert f"Running stage '{stage}'" in first.stdout

    second = run_command([tool("dvc"), "repro"], cwd=project, KEDRO_ENV="tiny")
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout

    shown = run_command([tool("dvc"), "metrics", "show", "--json"], cwd=project)
    metrics = json.loads(shown.stdout)
    figures = next(iter(metrics.values()))["data"]["data/08_reporting/metrics.json"]["data"]
    assert figures["sft"]["perplexity"]["value"] < figures["base"]["perplexity"]["value"]


def test_every_code_and_config_dependency_named_in_dvc_yaml_exists():
    """A moved module must not leave dvc.yaml naming a path that is gone: `dvc repro` would stop
    on it, and only the slow test above would say so."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    named = [
        (name, next(iter(entry)) if isinstance(entry, dict) else entry)
        for name, stage in stages.items()
        for entry in [*stage.get("deps", []), *stage.get("params", [])]
    ]
    assert named
    missing = [
        f"{name}: {path}"
        for name, path in named
        if path.startswith(("src/", "conf/")) and not (PROJECT_ROOT / path).exists()
    ]
    assert not missing, missing
