"""Worker processes for per-row work: results in task order, whatever the number of workers."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest

from llm_pipeline.cpus import usable_cpu_count
from llm_pipeline.hygiene import parallel


def square_with_pid(shared: dict, task: int) -> tuple[int, int]:
    time.sleep(0.005)  # long enough that both processes get tasks
    return task * shared["factor"], os.getpid()


def fail_on_three(shared: None, task: int) -> int:
    if task == 3:
        raise ValueError("task 3 refused")
    return task


def test_results_come_back_in_task_order_from_this_and_another_process() -> None:
    tasks = list(range(40))
    results = parallel.map_in_order(square_with_pid, tasks, {"factor": 3}, workers=2)
    assert [value for value, _ in results] == [3 * t for t in tasks]
    pids = {pid for _, pid in results}
    assert len(pids) == 2 and os.getpid() in pids


def test_one_worker_or_one_task_runs_in_this_process() -> None:
    for workers, tasks in ((1, [1, 2, 3]), (2, [5])):
        results = parallel.map_in_order(square_with_pid, tasks, {"factor": 2}, workers)
        assert results == [(2 * t, os.getpid()) for t in tasks]


def test_an_error_in_a_worker_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="task 3 refused"):
        parallel.map_in_order(fail_on_three, range(6), None, workers=2)


def test_worker_count_auto_is_the_cores_and_nonsense_is_refused() -> None:
    assert parallel.worker_count("auto") == usable_cpu_count()
    assert parallel.worker_count(3) == 3
    for wrong in (0, -1, "two", 1.5, True, None):
        with pytest.raises(ValueError, match="workers must be"):
            parallel.worker_count(wrong)


def test_chunk_ranges_cover_every_index_once_in_order() -> None:
    sizes = [5, 50, 1, 1, 1, 200, 3, 0, 7]
    ranges = parallel.chunk_ranges(sizes, max_size=10)
    assert [i for r in ranges for i in r] == list(range(len(sizes)))
    assert all(len(r) >= 1 for r in ranges)
    assert range(5, 6) in ranges  # an item over the limit is a chunk of its own
    assert parallel.chunk_ranges([], 10) == []


def read_terminal(master: int) -> str:
    """Everything written so far to the terminal whose master end is ``master``."""
    chunks = []
    while select.select([master], [], [], 0.2)[0]:
        chunks.append(os.read(master, 65536))
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_labelled_bar_shows_rate_on_a_terminal_and_changes_no_result(workers, monkeypatch):
    tasks = list(range(30))
    plain = parallel.map_in_order(square_with_pid, tasks, {"factor": 3}, workers)
    master, replica = pty.openpty()
    # A new pseudo-terminal is 0 columns wide: give it the size of a real one.
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    with os.fdopen(replica, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        labelled = parallel.map_in_order(
            square_with_pid, tasks, {"factor": 3}, workers,
            label="clean text", sizes=[10] * len(tasks), unit="rows",
        )  # fmt: skip
        shown = read_terminal(master)
    os.close(master)
    assert [value for value, _ in labelled] == [value for value, _ in plain]
    assert "clean text" in shown and "300/300" in shown
    assert "rows/s" in shown


def test_no_bar_without_a_terminal_or_without_a_label(capfd):
    parallel.map_in_order(square_with_pid, range(4), {"factor": 1}, 1, label="read files")
    parallel.map_in_order(square_with_pid, range(4), {"factor": 1}, 2)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_sizes_must_match_the_tasks():
    with pytest.raises(ValueError, match="3 sizes for 2 tasks"):
        parallel.map_in_order(square_with_pid, [1, 2], {"factor": 1}, 1, sizes=[1, 2, 3])


def test_a_window_reads_its_own_items_at_their_places_and_refuses_the_rest():
    whole = [f"text {i}" for i in range(10)]
    window = parallel.Window(whole, 3, 7)

    assert len(window) == 10
    assert [window[i] for i in range(3, 7)] == whole[3:7]
    assert window[4:6] == whole[4:6]
    assert window[3:7] == whole[3:7]
    assert window[-4] == whole[6]
    assert window[5:5] == []
    for outside in (2, 7, -1):
        with pytest.raises(IndexError):
            window[outside]
    for outside in (slice(2, 5), slice(5, 8), slice(None)):
        with pytest.raises(IndexError):
            window[outside]
    with pytest.raises(TypeError):
        list(window)
