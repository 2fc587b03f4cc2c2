"""`make airflow-dag` (kedro-airflow): the DAG file is valid Python that runs every node of the
default pipeline once, in the pipeline's order, with task ids Airflow accepts and no in-memory
data passed between two tasks. Airflow itself is not installed: the file is read, not run."""

from __future__ import annotations

import ast
import py_compile
import re
import shutil
import sys
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.project import configure_project
from kedro.io import CatalogConfigResolver
from support import PROJECT_ROOT, copy_project, run_command

from llm_pipeline.settings import CONFIG_LOADER_ARGS

# Airflow's own rule for task ids (airflow.sdk validate_key).
TASK_ID = re.compile(r"^[\w.-]{1,250}$")


@pytest.fixture(scope="module")
def dag_file(tmp_path_factory) -> Path:
    """The DAG that the Makefile's recipe writes, from a copy of the project."""
    root = tmp_path_factory.mktemp("airflow")
    (root / "raw").mkdir()
    (root / "project").mkdir()
    project = copy_project(root / "project", root / "raw")
    shutil.copy2(PROJECT_ROOT / "Makefile", project / "Makefile")
    shutil.copytree(PROJECT_ROOT / "deploy", project / "deploy")
    bin_dir = str(Path(sys.executable).parent)
    # -o setup: this environment is the one to use; make must not install another.
    result = run_command(
        ["make", "-o", "setup", "airflow-dag", f"BIN={bin_dir}", f"AIRFLOW_DAGS={root / 'dags'}"],
        cwd=project,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "dags" / "llm_pipeline_dag.py"


@pytest.fixture(scope="module")
def default_pipeline():
    configure_project("llm_pipeline")
    from llm_pipeline.pipeline_registry import register_pipelines

    return register_pipelines()["__default__"]


def tasks_and_nodes(tree: ast.Module) -> dict[str, list[str]]:
    """{task id: the Kedro nodes it runs}, from the ``@task(task_id=...)`` functions."""
    tasks = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "task":
                task_id = next(k.value.value for k in decorator.keywords if k.arg == "task_id")
                assert task_id not in tasks, f"task id {task_id} appears twice"
                tasks[task_id] = [
                    element.value
                    for call in ast.walk(function)
                    if isinstance(call, ast.Call)
                    and getattr(call.func, "id", "") == "_run_kedro_node"
                    for keyword in call.keywords
                    if keyword.arg == "node_names"
                    for element in keyword.value.elts
                ]
    return tasks


def dependencies(tree: ast.Module) -> set[tuple[str, str]]:
    """The ``tasks["a"] >> tasks["b"]`` edges of the DAG."""
    return {
        (expr.left.slice.value, expr.right.slice.value)
        for expr in ast.walk(tree)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.RShift)
    }


def test_the_dag_is_valid_python(dag_file):
    py_compile.compile(str(dag_file), doraise=True)
    assert "from airflow.sdk import dag, task" in dag_file.read_text()


def test_every_node_runs_in_exactly_one_task(dag_file, default_pipeline):
    tasks = tasks_and_nodes(ast.parse(dag_file.read_text()))
    named = [node for nodes in tasks.values() for node in nodes]
    assert sorted(named) == sorted(node.name for node in default_pipeline.nodes)
    for task_id in tasks:
        assert TASK_ID.match(task_id), f"Airflow refuses the task id {task_id!r}"


def test_tasks_keep_the_pipeline_order(dag_file, default_pipeline):
    tree = ast.parse(dag_file.read_text())
    task_of = {node: task for task, nodes in tasks_and_nodes(tree).items() for node in nodes}
    edges = dependencies(tree)
    for node, parents in default_pipeline.node_dependencies.items():
        for parent in parents:
            edge = (task_of[parent.name], task_of[node.name])
            assert edge[0] == edge[1] or edge in edges, f"{parent.name} must run before {node.name}"


def test_no_in_memory_dataset_passes_between_tasks(dag_file, default_pipeline):
    """Each task is a Kedro session of its own: what one task hands another must be saved."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    catalog = CatalogConfigResolver(config=loader["catalog"])
    task_of = {
        node: task
        for task, nodes in tasks_and_nodes(ast.parse(dag_file.read_text())).items()
        for node in nodes
    }
    producer = {output: node.name for node in default_pipeline.nodes for output in node.outputs}
    for node in default_pipeline.nodes:
        for dataset in node.inputs:
            source = producer.get(dataset)
            if source is None or task_of[source] == task_of[node.name]:
                continue
            saved = dataset in catalog.config or catalog.match_dataset_pattern(dataset)
            assert saved, f"{dataset} goes from {source} to {node.name} in memory across tasks"
