"""Rank 0 of a torchrun job reports into the MLflow run that launched it and into the log.

Three things watch a training job: the Trainer's numbers as MLflow metrics, the machine's CPU,
memory (and GPU where NVML finds one) as MLflow system metrics, and a progress line with rate and
ETA in the streamed log, where a redrawn tqdm bar would become one log line per redraw. Every
entrypoint lists ``MlflowMetricsCallback``, so it carries all three.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from llm_pipeline.training.launch import (
    PROGRESS_SECONDS_VARIABLE,
    RUN_ID_VARIABLE,
    SYSTEM_METRICS_SECONDS_VARIABLE,
    seconds_since_launch,
)

logger = logging.getLogger(__name__)
# Every entrypoint imports this module after transformers (and TRL): the end of its imports.
_IMPORTED_AT = time.time()

DEFAULT_PROGRESS_SECONDS = 30.0
DEFAULT_SYSTEM_METRICS_SECONDS = 10.0


class ProgressLine:
    """At most one line every ``interval`` seconds, and always one at the end:
    ``step 40/200 (20%), 3.1 steps/s, 512 tokens/s, ETA 0:00:52`` (``unit`` is "step").

    Rates are over the time since the previous line, so they follow the current speed (and
    include evaluation and saving, which the remaining steps will pay too).
    """

    def __init__(
        self, interval: float, unit: str = "step", clock: Callable[[], float] = time.monotonic
    ):
        self._interval = interval
        self._unit = unit
        self._clock = clock
        self._total = 0
        self._last: tuple[float, int, int] = (0.0, 0, 0)

    def start(self, done: int, total: int) -> None:
        """Count from ``done`` (above 0 when resuming) towards ``total``."""
        self._total = total
        self._last = (self._clock(), done, 0)

    def line(self, done: int, tokens: int = 0) -> str | None:
        """The line once ``done`` of the total and ``tokens`` tokens in all are through, or None
        when it is too soon."""
        now = self._clock()
        since, last_done, last_tokens = self._last
        seconds = now - since
        finished = done >= self._total
        if done <= last_done or (seconds < self._interval and not finished):
            return None
        self._last = (now, done, tokens)
        rate = (done - last_done) / seconds if seconds > 0 else 0.0
        percent = 100 * done / max(self._total, 1)
        parts = [
            f"{self._unit} {done}/{self._total} ({percent:.0f}%)",
            f"{rate:.3g} {self._unit}s/s",
        ]
        if tokens > last_tokens and seconds > 0:
            parts.append(f"{(tokens - last_tokens) / seconds:.0f} tokens/s")
        if rate > 0:
            eta = datetime.timedelta(seconds=round(max(self._total - done, 0) / rate))
            parts.append(f"ETA {eta}")
        return ", ".join(parts)


class TrainingProgress(TrainerCallback):
    """Log a ``ProgressLine`` on rank 0 every ``interval`` seconds.

    Tokens are the ``input_ids`` this rank's model sees in training, padding included, times
    the number of ranks (each gets as many batches).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self._progress = ProgressLine(interval, "step", clock)
        self._world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._tokens = 0
        self._hook: Any = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        self._progress.start(state.global_step, state.max_steps)
        if model is not None:
            self._hook = model.register_forward_pre_hook(self._count_tokens, with_kwargs=True)

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        line = self._progress.line(state.global_step, self._tokens * self._world_size)
        if line:
            logger.info(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _count_tokens(self, module: Any, args: tuple, kwargs: dict) -> None:
        if module.training:
            inputs = kwargs.get("input_ids", args[0] if args else None)
            if inputs is not None and hasattr(inputs, "numel"):
                self._tokens += inputs.numel()


class SystemMetrics:
    """MLflow's system metrics monitor (``system/cpu_utilization_percentage``,
    ``system/system_memory_usage_megabytes``, GPU ones where NVML is available) on ``run_id``.

    Steps continue from the run's last system step, so the stages of one ``kedro run`` follow
    each other; ``stop`` logs the samples of the last, partial interval too, so a job shorter than
    one interval still leaves its figures.
    """

    def __init__(self, run_id: str, interval: float):
        import psutil

        # psutil measures CPU use since its previous call: this one starts the first interval.
        psutil.cpu_percent()
        self._run_id = run_id
        self._interval = interval
        self._monitor: Any = None

    def start(self) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # Watching the machine must never stop the training it watches.
        try:
            self._monitor = SystemMetricsMonitor(
                self._run_id, sampling_interval=self._interval, resume_logging=True
            )
            self._monitor.start()
        except Exception as error:
            logger.warning("No system metrics for this job: MLflow refused them (%s).", error)
            self._monitor = None

    def stop(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        monitor.finish()
        try:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as error:
            logger.warning("The last system metrics of this job were not logged (%s).", error)


def startup_line() -> str | None:
    """How long this worker took from ``launch`` to its first step, in three parts: torchrun
    starting the process, the imports, and building the model and data (None unless launched)."""
    since_launch = seconds_since_launch()
    if since_launch is None:
        return None
    import psutil

    now = time.time()
    launched = now - since_launch
    # The kernel counts a process's start in clock ticks (10 ms) from a rounded boot time, so it
    # can read a little before the launch it followed ("torchrun -0.0 s"): not before it.
    created = min(max(psutil.Process().create_time(), launched), _IMPORTED_AT)
    return (
        f"worker ready {since_launch:.1f} s after launch: torchrun {created - launched:.1f} s, "
        f"imports {_IMPORTED_AT - created:.1f} s, model and data {now - _IMPORTED_AT:.1f} s"
    )


class MlflowMetricsCallback(TrainerCallback):
    """Log every number the Trainer reports as ``<prefix>/<name>`` at the current step; on rank
    0, also system metrics into the run and progress lines into the log.

    Transformers' own MLflow callback also logs every TrainingArguments field as a run
    parameter, which collides across stages in one run; this logs metrics only.
    """

    def __init__(self, prefix: str):
        self._prefix = prefix
        self._run_id = os.environ.get(RUN_ID_VARIABLE)
        self._client: Any = None
        self._progress = TrainingProgress(progress_seconds())
        system_seconds = _seconds(SYSTEM_METRICS_SECONDS_VARIABLE, DEFAULT_SYSTEM_METRICS_SECONDS)
        rank_zero = int(os.environ.get("RANK", "0")) == 0
        self._system = (
            SystemMetrics(self._run_id, system_seconds)
            if self._run_id and system_seconds and rank_zero
            else None
        )

    def on_train_begin(self, args, state, control, **kwargs):
        self._progress.on_train_begin(args, state, control, **kwargs)
        if not state.is_world_process_zero:
            return
        if line := startup_line():
            logger.info(line)
        if self._system is not None:
            self._system.start()

    def on_step_end(self, args, state, control, **kwargs):
        self._progress.on_step_end(args, state, control, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        self._progress.on_train_end(args, state, control, **kwargs)
        if self._system is not None:
            self._system.stop()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self._run_id or not state.is_world_process_zero or not logs:
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        if self._client is None:
            self._client = MlflowClient()
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{self._prefix}/{name}", float(value), now, state.global_step)
            for name, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        if metrics:
            self._client.log_batch(self._run_id, metrics=metrics)


def progress_seconds() -> float:
    """Seconds between progress lines (``launch.progress_seconds``; 0: only the last line)."""
    return _seconds(PROGRESS_SECONDS_VARIABLE, DEFAULT_PROGRESS_SECONDS) or float("inf")


def _seconds(variable: str, default: float) -> float:
    """Seconds from the environment, which the launcher sets from ``launch:``."""
    value = os.environ.get(variable, "")
    return float(value) if value.strip() else default
