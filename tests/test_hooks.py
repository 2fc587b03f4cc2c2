"""RunTimings, the hook behind bench/overhead.py: a node's interval is its function alone, dataset
loads and saves are their own, and other plugins' hooks are timed apart."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from kedro.framework.hooks import _create_hook_manager, hook_impl
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from llm_pipeline.hooks import TIMINGS_VARIABLE, RunTimings


class SlowTracker:
    """Another plugin, as kedro-mlflow is one: its time is not the node's."""

    @hook_impl
    def before_node_run(self, node) -> None:
        time.sleep(0.2)


def slow_double(value: int) -> int:
    time.sleep(0.1)
    return 2 * value


def test_nodes_datasets_and_other_hooks_are_timed_apart(tmp_path):
    manager = _create_hook_manager()
    timings = RunTimings(tmp_path / "timings.json")
    manager.register(timings)
    manager.register(SlowTracker())
    manager.hook.after_context_created(context=SimpleNamespace(_hook_manager=manager))
    catalog = DataCatalog({"number": MemoryDataset(21), "doubled": MemoryDataset()})
    manager.hook.after_catalog_created(
        catalog=catalog,
        conf_catalog={},
        conf_creds={},
        parameters={},
        save_version=None,
        load_versions={},
    )
    pipeline = Pipeline([node(slow_double, "number", "doubled", name="double")])
    SequentialRunner().run(pipeline, catalog, manager)
    manager.hook.after_pipeline_run(
        run_params={}, run_result={}, pipeline=pipeline, catalog=catalog
    )

    intervals = json.loads((tmp_path / "timings.json").read_text())
    [compute] = [i for i in intervals if i["kind"] == "node"]
    assert compute["name"] == "double"
    assert 0.1 <= compute["end"] - compute["start"] < 0.2  # the other plugin's 0.2 s is not in it
    [tracker] = [i for i in intervals if i["kind"] == "hook" and i["name"] == "before_node_run"]
    assert tracker["node"] == "double" and tracker["end"] - tracker["start"] >= 0.2
    assert tracker["plugin"] == SlowTracker.__module__.split(".")[0]
    [load] = [i for i in intervals if i["kind"] == "load"]
    assert load["name"] == "number" and load["node"] == "double"
    assert load["dataset_type"] == "kedro.io.memory_dataset.MemoryDataset"
    assert [i["name"] for i in intervals if i["kind"] == "save"] == ["doubled"]


def test_registered_only_when_a_timings_file_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv(TIMINGS_VARIABLE, raising=False)
    assert RunTimings.from_environment() == ()
    monkeypatch.setenv(TIMINGS_VARIABLE, str(tmp_path / "t.json"))
    [hooks] = RunTimings.from_environment()
    assert isinstance(hooks, RunTimings)


def test_the_projects_mlflow_hook_is_timed_as_kedro_mlflows_tracking():
    from llm_pipeline.hooks import BatchedMlflowHook, _plugin_package

    assert _plugin_package(BatchedMlflowHook()) == "kedro_mlflow"
    assert _plugin_package(SlowTracker()) == SlowTracker.__module__.split(".")[0]
