"""The registry: every pipeline is a namespace of its own name (kedro-viz draws each stage as a
group), its nodes are named after it, and its datasets and parameters keep their catalog names."""

from __future__ import annotations

import pytest
from kedro.framework.project import configure_project, find_pipelines
from kedro.pipeline import Pipeline
from support import copy_project, run_command, tool

from llm_pipeline.pipeline_registry import STAGES, register_pipelines


@pytest.fixture(scope="module")
def found():
    """The pipelines as the stages' ``create_pipeline`` make them, and as registered."""
    configure_project("llm_pipeline")
    return find_pipelines(raise_errors=True), register_pipelines()


def test_every_pipeline_is_registered_once_under_its_folder_name(found):
    plain, registered = found
    assert set(registered) == {*STAGES, "tune", "feedback", "__default__"}
    assert set(plain) - {"__default__"} == set(registered) - {"__default__"}


def test_every_node_carries_its_pipeline_as_namespace_and_nothing_else_changes(found):
    plain, registered = found
    for name, pipeline in registered.items():
        if name == "__default__":
            continue
        nodes = {node.name: node for node in pipeline.nodes}
        assert {node.namespace for node in nodes.values()} == {name}
        assert set(nodes) == {f"{name}.{node.name}" for node in plain[name].nodes}
        for node in plain[name].nodes:
            copy = nodes[f"{name}.{node.name}"]
            assert copy.func is node.func, copy.name
            assert (copy.inputs, copy.outputs) == (node.inputs, node.outputs), copy.name
            assert copy.tags == node.tags, copy.name


def test_datasets_and_parameters_keep_their_catalog_names(found):
    plain, registered = found
    for name, pipeline in registered.items():
        if name != "__default__":
            assert pipeline.datasets() == plain[name].datasets(), name
    # (Parameters are named after their stage's file already: params:ingest.pii.)
    prefixes = tuple(f"{name}." for name in registered)
    datasets = {d for p in registered.values() for d in p.datasets() if ":" not in d}
    assert not [dataset for dataset in datasets if dataset.startswith(prefixes)]


def test_the_default_pipeline_is_the_stages_in_the_order_data_flows(found):
    _, registered = found
    default = registered["__default__"]
    stages = sum((registered[stage] for stage in STAGES), Pipeline([]))
    assert [node.name for node in default.nodes] == [node.name for node in stages.nodes]
    assert {node.namespace for node in default.nodes} == set(STAGES)
    # No stage reads what a later stage makes.
    for node, parents in default.node_dependencies.items():
        for parent in parents:
            assert STAGES.index(parent.namespace) <= STAGES.index(node.namespace), (
                f"{node.name} reads from {parent.name}"
            )


@pytest.mark.slow
def test_nodes_are_named_and_run_by_their_namespaced_names(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    described = run_command([tool("kedro"), "registry", "describe", "finetune"], cwd=project)
    assert described.returncode == 0, described.stderr[-3000:]
    assert "- finetune.finetune_model (finetune_model)\n" in described.stdout

    command = [tool("kedro"), "run", "--env", "tiny", "--pipeline", "ingest", "--to-nodes"]
    result = run_command([*command, "ingest.clean_records"], cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Completed node: ingest.clean_records" in output
    assert "Completed 5 out of 5 tasks" in output
    assert "ingest.redact_personal_data" not in output

    # A name from before the namespaces fails, and Kedro names the node meant.
    unprefixed = run_command([*command, "clean_records"], cwd=project)
    assert unprefixed.returncode != 0
    assert "Did you mean: ['ingest.clean_records']?" in unprefixed.stdout + unprefixed.stderr
