"""DVC: the stages hand each other files that dvc.yaml names; `dvc commit` records a run's
outputs, `dvc repro` then does nothing, and reruns only the stages a changed parameter touches;
every code and config path that dvc.yaml names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT, copy_of_finished_run, run_command, tool

STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def project_relative(path: str) -> str:
    """A catalog file path as dvc.yaml writes it: relative to the project."""
    found = Path(path)
    return (found.relative_to(PROJECT_ROOT) if found.is_absolute() else found).as_posix()


def entry_paths(entries: list) -> list[str]:
    """The paths of dvc.yaml's ``entries``: each a path, or a path with its options."""
    return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]


def declared(relative: str, entries: list) -> bool:
    """Whether ``relative`` is one of dvc.yaml's ``entries`` or inside one of them."""
    return any(relative == path or relative.startswith(path + "/") for path in entry_paths(entries))


@pytest.mark.slow
def test_dvc_records_the_stages_outputs_and_reruns_only_what_a_changed_parameter_touches(
    finished_tiny_run, tmp_path
):
    """The shared tiny run's project under DVC (the stages' own runs, one `kedro run --pipeline`
    each, are what `dvc repro` would do from nothing: the datasets between the stages are files,
    ``test_every_dataset_passed_between_stages_is_a_file_dvc_yaml_names`` below): `dvc commit`
    records what each stage made, a `dvc repro` then runs nothing, and a changed evaluation
    parameter reruns the evaluate stage and the register stage after it, nothing upstream."""
    project = copy_of_finished_run(finished_tiny_run, tmp_path / "project")
    for args in (["git", "init", "-q"], [tool("dvc"), "init", "-q"]):
        assert run_command(args, cwd=project).returncode == 0
    run_command([tool("dvc"), "config", "core.analytics", "false"], cwd=project)
    run_command(["git", "add", "-A"], cwd=project)
    assert run_command(["git", "commit", "-qm", "project"], cwd=project).returncode == 0

    committed = run_command([tool("dvc"), "commit", "--force"], cwd=project, KEDRO_ENV="tiny")
    assert committed.returncode == 0, committed.stdout[-3000:] + committed.stderr[-3000:]
    locked = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert set(locked) == set(STAGES)

    unchanged = run_command([tool("dvc"), "repro"], cwd=project, KEDRO_ENV="tiny")
    assert unchanged.returncode == 0, unchanged.stdout[-3000:] + unchanged.stderr[-3000:]
    assert "Running stage" not in unchanged.stdout
    assert "up to date" in unchanged.stdout

    parameters = project / "conf/base/parameters_evaluate.yml"
    text = parameters.read_text(encoding="utf-8")
    assert "bootstrap_resamples: 1000\n" in text
    parameters.write_text(text.replace("bootstrap_resamples: 1000\n", "bootstrap_resamples: 999\n"))
    changed = run_command([tool("dvc"), "repro"], cwd=project, KEDRO_ENV="tiny")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert re.findall(r"Running stage '(\w+)'", changed.stdout) == ["evaluate", "register"]

    shown = run_command([tool("dvc"), "metrics", "show", "--json"], cwd=project)
    metrics = json.loads(shown.stdout)
    figures = next(iter(metrics.values()))["data"]["data/08_reporting/metrics.json"]["data"]
    assert figures["sft"]["perplexity"]["value"] < figures["base"]["perplexity"]["value"]


def test_every_dataset_passed_between_stages_is_a_file_dvc_yaml_names():
    """Each DVC stage runs its pipeline alone (`kedro run --pipeline <stage>`): what one stage
    hands to another must be a file of the catalog, an output of the first stage and a
    dependency of the second in dvc.yaml, or the second would find nothing or run on stale
    data."""
    from kedro.framework.project import configure_project, pipelines
    from kedro.framework.session import KedroSession

    configure_project("llm_pipeline")
    with KedroSession.create(project_path=PROJECT_ROOT, env="tiny") as session:
        catalog = session.load_context().catalog
    made_by = {dataset: stage for stage in STAGES for dataset in pipelines[stage].outputs()}
    handed = [
        (made_by[dataset], stage, dataset)
        for stage in STAGES
        for dataset in sorted(pipelines[stage].inputs())
        if dataset in made_by and made_by[dataset] != stage
    ]
    assert handed
    problems = []
    for producer, consumer, dataset in handed:
        path = getattr(catalog.get(dataset), "_filepath", None)
        if path is None:
            problems.append(f"{dataset} ({producer} -> {consumer}) is not a file")
            continue
        relative = project_relative(str(path))
        if not declared(
            relative, STAGES[producer].get("outs", []) + STAGES[producer].get("metrics", [])
        ):
            problems.append(f"{dataset}: {relative} is not among the outs of {producer}")
        if not declared(relative, STAGES[consumer].get("deps", [])):
            problems.append(f"{dataset}: {relative} is not among the deps of {consumer}")
    assert not problems, problems


def test_every_code_and_config_dependency_named_in_dvc_yaml_exists():
    """A moved module must not leave dvc.yaml naming a path that is gone: `dvc repro` would stop
    on it, and no test here runs every stage."""
    named = [
        (name, path)
        for name, stage in STAGES.items()
        for path in entry_paths([*stage.get("deps", []), *stage.get("params", [])])
    ]
    assert named
    missing = [
        f"{name}: {path}"
        for name, path in named
        if path.startswith(("src/", "conf/")) and not (PROJECT_ROOT / path).exists()
    ]
    assert not missing, missing
