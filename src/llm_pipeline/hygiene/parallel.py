"""Per-row work spread over worker processes, in chunks, with results in input order.

The large inputs reach each worker once, when it starts (inherited without a copy where
processes fork), and a task is only a small description such as an index range into them:
pickling 100 MB of text through a pipe costs more than cleaning it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")

_shared: Any = None


def worker_count(setting: int | str) -> int:
    """``"auto"`` is one worker per core (``os.cpu_count()``); 1 runs everything in-process."""
    if setting == "auto":
        return os.cpu_count() or 1
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
    workers: int,
) -> list[Result]:
    """``[function(shared, task) for task in tasks]``, computed by up to ``workers`` processes.

    This process is one of them: it takes the next task whenever the others have enough
    queued, so its share of the work costs no copy at all. ``function`` must be a module-level
    function; with one worker or one task every call runs here, and the results never depend
    on the number of workers.
    """
    tasks = list(tasks)
    if workers <= 1 or len(tasks) < 2:
        return [function(shared, task) for task in tasks]
    helpers = min(workers, len(tasks)) - 1
    results: list[Any] = [None] * len(tasks)
    queued: dict[Future, int] = {}
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
                for future in [future for future in queued if future.done()]:
                    results[queued.pop(future)] = future.result()
            for future in as_completed(queued):
                results[queued[future]] = future.result()
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
