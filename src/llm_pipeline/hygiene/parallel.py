"""Per-row work spread over worker processes, in chunks, with results in input order.

The large inputs reach each worker once, when it starts (inherited without a copy where
processes fork), and a task is only a small description such as an index range into them:
pickling 100 MB of text through a pipe costs more than cleaning it. A caller that names its
work gets a progress bar with a rate and an ETA on a terminal, and none in a CI log.
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from tqdm import tqdm

from llm_pipeline.cpus import usable_cpu_count

Task = TypeVar("Task")
Result = TypeVar("Result")

_shared: Any = None


def worker_count(setting: int | str) -> int:
    """``"auto"`` is one worker per CPU this process may use (its affinity and container limit,
    not the host's cores); 1 runs everything in-process."""
    if setting == "auto":
        return usable_cpu_count()
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"workers must be 'auto' or an integer of at least 1, not {setting!r}")
    return setting


def chunk_ranges(sizes: Sequence[int], max_size: int) -> list[range]:
    """Consecutive index ranges whose sizes add up to about ``max_size`` (at least one item)."""
    ranges, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if total and total + size > max_size:
            ranges.append(range(start, index))
            start, total = index, 0
        total += size + 1
    if start < len(sizes):
        ranges.append(range(start, len(sizes)))
    return ranges


def map_in_order(
    function: Callable[[Any, Task], Result],
    tasks: Iterable[Task],
    shared: Any,
    workers: int | Any,
    *,
    label: str | None = None,
    sizes: Sequence[float] | None = None,
    unit: str = "tasks",
    part: Callable[[Any, Task], tuple[Any, Any]] | None = None,
) -> list[Result]:
    """``[function(shared, task) for task in tasks]``, computed by up to ``workers`` processes
    (or, when ``workers`` is the ``ray`` engine's ``RayWorkers``, by its cluster).

    This process is one of them: it takes the next task whenever the others have enough
    queued, so its share of the work costs no copy at all. ``function`` must be a module-level
    function; with one worker or one task every call runs here, and the results never depend
    on the number of workers. With a ``label``, a progress bar counts each task as its entry in
    ``sizes`` (default 1) ``unit``s, shown only when stderr is a terminal.

    ``part(shared, task)``, where given, is the piece of ``shared`` that ``task`` reads, and the
    task as that piece sees it (``Window`` keeps indices valid): an engine that sends every task
    its own input (the ``ray`` engine, over a network) sends that piece instead of all of
    ``shared`` to every worker. Local processes inherit ``shared`` and ignore it.
    """
    tasks = list(tasks)
    weights = [1.0] * len(tasks) if sizes is None else [float(size) for size in sizes]
    if len(weights) != len(tasks):
        raise ValueError(f"{len(weights)} sizes for {len(tasks)} tasks: give one size per task.")
    with progress_bar(label, sum(weights), unit) as bar:
        if not isinstance(workers, int):  # the ``ray`` engine (hygiene/ray_engine.py)
            return workers.map_in_order(function, tasks, weights, shared, bar, part)
        if workers <= 1 or len(tasks) < 2:
            results = []
            for task, weight in zip(tasks, weights, strict=True):
                results.append(function(shared, task))
                bar.update(weight)
            return results
        return _map_in_pool(function, tasks, weights, shared, workers, bar)


class Window(Sequence):
    """Items ``start`` to ``stop`` of a sequence, at their places in the whole: ``window[i]`` and
    ``window[a:b]`` inside that range are the whole's, ``len(window)`` is the whole's length, and
    anything outside the range is an ``IndexError``. What a task gets when it should not get
    the whole sequence (``map_in_order``'s ``part``)."""

    def __init__(self, values: Sequence, start: int, stop: int):
        self._items = list(values[start:stop])
        self._start, self._stop, self._length = start, stop, len(values)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator:
        # Sequence would iterate from item 0, and stop at once on the IndexError: an empty
        # iteration, not an error, for a window that starts later.
        raise TypeError("a Window is read by index or by a slice within it, not iterated whole")

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._length)
            if step != 1 or (stop > start and not self._start <= start <= stop <= self._stop):
                raise IndexError(f"{key} is not within items {self._start} to {self._stop}")
            return self._items[start - self._start : max(start, stop) - self._start]
        index = key + self._length if key < 0 else key
        if not self._start <= index < self._stop:
            raise IndexError(f"item {key} is not within items {self._start} to {self._stop}")
        return self._items[index - self._start]


def progress_bar(label: str | None, total: float, unit: str) -> tqdm:
    """A tqdm bar with rate and ETA on a terminal; silent without a label or without a terminal
    (``disable=None``), where redrawn bars would only fill a CI log. ``unit="B"`` counts bytes
    and shows MB/s; any other unit is a word ("12.3k rows/s")."""
    return tqdm(
        total=total,
        desc=label,
        unit=unit if unit == "B" else f" {unit}",
        unit_scale=True,
        disable=None if label else True,
        mininterval=0.5,
        dynamic_ncols=True,
    )


def _map_in_pool(
    function: Callable[[Any, Any], Any],
    tasks: list[Any],
    weights: list[float],
    shared: Any,
    workers: int,
    bar: tqdm,
) -> list[Any]:
    helpers = min(workers, len(tasks)) - 1
    results: list[Any] = [None] * len(tasks)
    queued: dict[Future, int] = {}

    def collect(future: Future) -> None:
        index = queued.pop(future)
        results[index] = future.result()
        bar.update(weights[index])

    # Objects that exist now are left out of garbage collections until the helpers are done:
    # a collection in a forked helper would write to every one, copying all their memory.
    gc.freeze()
    try:
        with ProcessPoolExecutor(
            helpers, mp_context=_context(), initializer=_receive, initargs=(shared,)
        ) as pool:
            for index, task in enumerate(tasks):
                if len(queued) < 2 * helpers:
                    queued[pool.submit(_call, function, task)] = index
                else:
                    results[index] = function(shared, task)
                    bar.update(weights[index])
                for future in [future for future in queued if future.done()]:
                    collect(future)
            for future in as_completed(list(queued)):
                collect(future)
    finally:
        gc.unfreeze()
    return results


def _context() -> Any:
    # A forked worker starts in milliseconds with every module and cache of its parent, and
    # inherits ``shared`` without pickling it; elsewhere the platform's safe default.
    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _receive(shared: Any) -> None:
    global _shared
    _shared = shared


def _call(function: Callable[[Any, Any], Any], task: Any) -> Any:
    return function(_shared, task)
