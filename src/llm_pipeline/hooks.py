"""The project's hooks: kedro-mlflow's, logging parameters in batches, and the run's timings.

``BatchedMlflowHook`` is kedro-mlflow's ``MlflowHook`` with one change: the parameters a node
reads are logged in one request instead of one per flattened key. kedro-mlflow's own hook logs
each key in its own SQLite transaction, which cost the tiny run 3.8 s of 116 s in
``before_node_run`` (bench/overhead.py). ``settings.py`` registers it in place of the plugin's
instance.

Where a run's wall time goes: node functions, dataset loads and saves, and other plugins' hooks.
``bench/overhead.py`` sets ``LLM_PIPELINE_TIMINGS`` to a file; only then does ``settings.py``
register ``RunTimings``, which writes every interval there as JSON when the pipeline ends. Its
hooks run last before and first after what they time, so a node's interval is its function
alone and a dataset's is its load or save alone; other plugins' hook implementations (kedro-mlflow
is the tracking) are wrapped in timers of their own.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks import MlflowHook
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

TIMINGS_VARIABLE = "LLM_PIPELINE_TIMINGS"


class BatchedMlflowHook(MlflowHook):
    """kedro-mlflow's hook, logging the parameters of a node in one ``log_params`` call."""

    _pending: dict[str, Any] | None = None

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool):
        self._pending = {}
        try:
            super().before_node_run(node, catalog, inputs, is_async)
            pending = self._pending
        finally:
            self._pending = None
        if pending:
            mlflow.log_params(pending)

    def _log_param(self, name: str, value: Any) -> None:
        # A value too long for MLflow keeps kedro-mlflow's long_params_strategy (tag, truncate).
        if self._pending is None or len(str(value)) > MAX_PARAM_VAL_LENGTH:
            return super()._log_param(name, value)
        self._pending[name] = value
        return None


class RunTimings:
    """Intervals ``{"kind", "name", "node", "start", "end", ...}`` in wall-clock seconds."""

    def __init__(self, path: Path):
        self._path = path
        self._intervals: list[dict[str, Any]] = []
        self._open: dict[tuple[str, str], float] = {}
        self._catalog: Any = None

    @classmethod
    def from_environment(cls) -> tuple[RunTimings, ...]:
        """The hooks to register: one ``RunTimings`` when ``LLM_PIPELINE_TIMINGS`` is set."""
        path = os.environ.get(TIMINGS_VARIABLE)
        return (cls(Path(path)),) if path else ()

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        self._add("context_created", "kedro", None, time.time(), time.time())
        # The session's plugin manager is not public; without it, hooks are simply not timed.
        manager = getattr(context, "_hook_manager", None)
        if manager is not None:
            self._time_other_hooks(manager)

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl(trylast=True)
    def before_node_run(self, node: Any) -> None:
        self._open[("node", node.name)] = time.time()

    @hook_impl(tryfirst=True)
    def after_node_run(self, node: Any) -> None:
        self._close("node", node.name, node.name)

    @hook_impl(trylast=True)
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        self._open[("load", dataset_name)] = time.time()

    @hook_impl(tryfirst=True)
    def after_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        self._close("load", dataset_name, node.name, dataset_type=self._type(dataset_name))

    @hook_impl(trylast=True)
    def before_dataset_saved(self, dataset_name: str, node: Any) -> None:
        self._open[("save", dataset_name)] = time.time()

    @hook_impl(tryfirst=True)
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        self._close("save", dataset_name, node.name, dataset_type=self._type(dataset_name))

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        self._write()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._write()

    def _time_other_hooks(self, manager: Any) -> None:
        for caller in vars(manager.hook).values():
            for implementation in getattr(caller, "get_hookimpls", list)():
                # A wrapper is a generator around the others: timing its call says nothing.
                wraps = implementation.hookwrapper or implementation.wrapper
                if implementation.plugin is self or wraps:
                    continue
                implementation.function = self._timed(
                    implementation.function,
                    _plugin_package(implementation.plugin),
                    caller.name,
                    list(implementation.argnames),
                )

    def _timed(self, function: Callable, plugin: str, hook: str, argnames: list[str]) -> Callable:
        """``function`` recording its interval; pluggy passes the hook's arguments by position."""
        at_node = argnames.index("node") if "node" in argnames else None

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return function(*args, **kwargs)
            finally:
                node = args[at_node].name if at_node is not None else None
                self._add("hook", hook, node, start, time.time(), plugin=plugin)

        return timed

    def _type(self, dataset_name: str) -> str | None:
        return self._catalog.get_type(dataset_name) if self._catalog is not None else None

    def _close(self, kind: str, name: str, node: str, **extra: Any) -> None:
        start = self._open.pop((kind, name), None)
        if start is not None:
            self._add(kind, name, node, start, time.time(), **extra)

    def _add(self, kind: str, name: str, node: str | None, start: float, end: float, **extra):
        self._intervals.append(
            {"kind": kind, "name": name, "node": node, "start": start, "end": end, **extra}
        )

    def _write(self) -> None:
        self._path.write_text(json.dumps(self._intervals), encoding="utf-8")


def _plugin_package(plugin: Any) -> str:
    """The package a hook implementation belongs to; a subclass of kedro-mlflow's hook (such as
    ``BatchedMlflowHook``) is kedro-mlflow's tracking all the same."""
    packages = [cls.__module__.split(".")[0] for cls in type(plugin).__mro__]
    return "kedro_mlflow" if "kedro_mlflow" in packages else packages[0]
