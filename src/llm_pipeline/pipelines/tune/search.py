"""Hyperparameter search with Optuna over a training stage's parameters, one MLflow run per trial.

The search lives here rather than in a node because every trial opens an MLflow run of its own,
nested under the run kedro-mlflow started, which no catalog dataset can express. Like
``training/launch.py`` it only attaches to a run that is already active: it never opens a
top-level run or chooses a tracking store, and without an active run it logs nothing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

# What Optuna accepts as a categorical choice.
Choice = bool | int | float | str | None


class FloatRange(BaseModel):
    """A real-valued parameter between ``low`` and ``high``; ``log`` samples its magnitude."""

    model_config = ConfigDict(extra="forbid")

    path: str
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_bounds(self) -> FloatRange:
        _check_range(self.path, self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError(f"'{self.path}': a log range cannot also have a step.")
        return self


class IntRange(BaseModel):
    """An integer parameter from ``low`` to ``high`` inclusive, every ``step``."""

    model_config = ConfigDict(extra="forbid")

    path: str
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check_bounds(self) -> IntRange:
        _check_range(self.path, self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError(f"'{self.path}': a log range cannot also have a step.")
        return self


class Categorical(BaseModel):
    """A parameter that takes one of ``choices``."""

    model_config = ConfigDict(extra="forbid")

    path: str
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)


Dimension = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="type")]


class Objective(BaseModel):
    """The number a trial is judged by: the last ``metric`` in the model's training log."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    direction: Literal["minimize", "maximize"]


class TuneConfig(BaseModel):
    """``params:tune``: which stage, judged how, over how many trials, sampled how, over what."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    objective: Objective
    n_trials: int = Field(ge=1)
    sampler: Literal["random", "grid", "tpe"]
    seed: int
    search_space: list[Dimension] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_space(self) -> TuneConfig:
        paths = [dimension.path for dimension in self.search_space]
        repeated = sorted({path for path in paths if paths.count(path) > 1})
        if repeated:
            raise ValueError(f"search_space names {repeated} more than once.")
        if self.sampler == "grid":
            grid_of(self.search_space)
        return self


@dataclass(frozen=True)
class SearchResult:
    """The best trial's values and score, and one row per trial."""

    best_values: dict[str, Any]
    best_value: float
    trials: pd.DataFrame


def grid_of(space: list[Dimension]) -> dict[str, list[Choice]]:
    """Every dimension's values for the grid sampler; a continuous range has none to list."""
    grid: dict[str, list[Choice]] = {}
    for dimension in space:
        if isinstance(dimension, Categorical):
            grid[dimension.path] = list(dimension.choices)
        elif isinstance(dimension, IntRange) and not dimension.log:
            grid[dimension.path] = list(range(dimension.low, dimension.high + 1, dimension.step))
        else:
            raise ValueError(
                f"The grid sampler needs explicit values, but '{dimension.path}' is a "
                f"{'log ' if dimension.log else ''}{dimension.type} range from {dimension.low} "
                f"to {dimension.high}. Give it `type: categorical, choices: [...]`, or use "
                "sampler random or tpe."
            )
    return grid


def check_parameter_path(
    path: str,
    stage: str,
    stage_params: Mapping[str, Any],
    schemas: Mapping[str, Callable[[], type]],
    fixed: Mapping[str, str],
) -> None:
    """Fail, naming ``path``, unless it is a parameter that the stage's training job reads.

    A path must lead through sections that exist; its last key must be set already or be a
    field of the library config class that ``schemas`` names for its section. ``fixed`` maps
    sections a trial does not re-run to the reason why.
    """
    head, *keys = path.split(".")
    if path in fixed:
        raise ValueError(f"Parameter path '{path}' cannot be searched: {fixed[path]}.")
    if head != stage or not keys:
        raise ValueError(
            f"Unknown parameter path '{path}': the search tunes the {stage} stage, so every path "
            f"starts with '{stage}.' (for example '{stage}.<section>.<name>')."
        )
    section: Any = stage_params
    for depth, key in enumerate(keys[:-1], start=1):
        section = section.get(key) if isinstance(section, Mapping) else None
        prefix = ".".join([stage, *keys[:depth]])
        if prefix in fixed:
            raise ValueError(f"Parameter path '{path}' cannot be searched: {fixed[prefix]}.")
        if not isinstance(section, Mapping):
            raise ValueError(
                f"Unknown parameter path '{path}': '{prefix}' is not a section of the {stage} "
                "parameters."
            )
    leaf = keys[-1]
    if leaf in section:
        return
    parent = ".".join([stage, *keys[:-1]])
    if parent in schemas:
        config_class = schemas[parent]()
        if leaf in _fields_of(config_class):
            return
        where = f"not set under '{parent}' and not a field of {config_class.__qualname__}"
    else:
        where = f"not set under '{parent}'"
    raise ValueError(f"Unknown parameter path '{path}': '{leaf}' is {where}.")


def with_values(stage_params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a stage's parameters with each ``<stage>.a.b`` path set to its value."""
    updated = copy.deepcopy(dict(stage_params))
    for path, value in values.items():
        *sections, leaf = path.split(".")[1:]
        target = updated
        for key in sections:
            target = target[key]
        target[leaf] = value
    return updated


def as_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths as nested mappings: the shape of a ``conf/<env>/parameters*.yml`` file."""
    overrides: dict[str, Any] = {}
    for path, value in values.items():
        *sections, leaf = path.split(".")
        target = overrides
        for key in sections:
            target = target.setdefault(key, {})
        target[leaf] = value
    return overrides


def read_objective(model_dir: Path, metric: str, log_file: str) -> float:
    """The last value of ``metric`` in a model folder's training log."""
    history = json.loads((model_dir / log_file).read_text(encoding="utf-8"))
    values = [entry[metric] for entry in history if metric in entry]
    if not values:
        logged = sorted({name for entry in history for name in entry})
        raise ValueError(
            f"The objective metric '{metric}' is not in {model_dir / log_file}; it holds "
            f"{logged}. Evaluate during training (eval_strategy) or choose one of those."
        )
    return float(values[-1])


def discard(model_dir: Path) -> None:
    """Remove a trial's model folder: the next `kedro run` retrains with the best values."""
    shutil.rmtree(model_dir, ignore_errors=True)


def run_search(
    config: TuneConfig,
    train_trial: Callable[[dict[str, Any]], float],
    recoverable: tuple[type[Exception], ...] = (),
) -> SearchResult:
    """Run ``config.n_trials`` trials of ``train_trial`` (values by path -> objective).

    A trial that raises one of ``recoverable`` is recorded as failed and the search goes on;
    anything else stops it. Each trial is a nested MLflow run when a run is active.
    """
    import optuna

    # Optuna's messages go through the project's logging instead of a handler of its own.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    study = optuna.create_study(direction=config.objective.direction, sampler=make_sampler(config))
    n_trials = config.n_trials
    if config.sampler == "grid":
        size = math.prod(len(values) for values in grid_of(config.search_space).values())
        if size < n_trials:
            logger.info("The grid has %d points: running %d trials, not %d", size, size, n_trials)
        elif size > n_trials:
            logger.warning("The grid has %d points; n_trials=%d leaves some out", size, n_trials)
        n_trials = min(size, n_trials)

    def objective(trial: Any) -> float:
        values = {dimension.path: _suggest(trial, dimension) for dimension in config.search_space}
        logger.info("Trial %d (%d of %d): %s", trial.number, trial.number + 1, n_trials, values)
        with _trial_run(trial.number, config.stage, values) as run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
            try:
                value = train_trial(values)
            except recoverable as error:
                trial.set_user_attr("error", str(error).splitlines()[0])
                raise
            _log_trial_metric(config.objective.metric, value)
        return value

    study.optimize(objective, n_trials=n_trials, catch=recoverable)
    trials = trial_table(study)
    completed = trials[trials["state"] == "COMPLETE"]
    if completed.empty:
        errors = trials["error"].dropna().tolist() if "error" in trials else []
        raise RuntimeError(
            f"All {len(trials)} trials of the {config.stage} search failed; the last error: "
            f"{errors[-1] if errors else 'unknown'}"
        )
    best = study.best_trial
    result = SearchResult(dict(best.params), float(best.value), trials)
    logger.info(
        "Best of %d trials: %s = %.6g with %s",
        len(completed),
        config.objective.metric,
        result.best_value,
        result.best_values,
    )
    _log_best(config.objective.metric, result)
    return result


def make_sampler(config: TuneConfig) -> Any:
    """The Optuna sampler ``config.sampler`` names, seeded by ``config.seed``."""
    import optuna

    if config.sampler == "grid":
        return optuna.samplers.GridSampler(grid_of(config.search_space), seed=config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed)


def trial_table(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, objective value, parameter values, MLflow run."""
    rows = [
        {
            "trial": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            **trial.params,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
            "error": trial.user_attrs.get("error"),
        }
        for trial in study.trials
    ]
    return pd.DataFrame(rows)


def _suggest(trial: Any, dimension: Dimension) -> Any:
    if isinstance(dimension, Categorical):
        return trial.suggest_categorical(dimension.path, dimension.choices)
    if isinstance(dimension, IntRange):
        return trial.suggest_int(
            dimension.path, dimension.low, dimension.high, step=dimension.step, log=dimension.log
        )
    return trial.suggest_float(
        dimension.path, dimension.low, dimension.high, step=dimension.step, log=dimension.log
    )


def _check_range(path: str, low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"'{path}': low ({low}) is above high ({high}).")
    if log and low <= 0:
        raise ValueError(f"'{path}': a log range needs low > 0, got {low}.")


def _fields_of(config_class: type) -> set[str]:
    import inspect

    return set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}


def _active_mlflow() -> Any:
    """MLflow when a run is active (kedro-mlflow's), else None; never imports it for nothing."""
    mlflow = sys.modules.get("mlflow")
    return mlflow if mlflow is not None and mlflow.active_run() is not None else None


@contextlib.contextmanager
def _trial_run(number: int, stage: str, values: Mapping[str, Any]) -> Iterator[str | None]:
    """A run nested under the active one, holding the trial's values; the launcher hands it to
    the workers, so the per-step losses land there too."""
    mlflow = _active_mlflow()
    if mlflow is None:
        yield None
        return
    tags = {"tune.stage": stage, "tune.trial": str(number)}
    with mlflow.start_run(run_name=f"trial-{number}", nested=True, tags=tags) as run:
        mlflow.log_params(dict(values))
        yield run.info.run_id


def _log_trial_metric(metric: str, value: float) -> None:
    mlflow = _active_mlflow()
    if mlflow is not None:
        mlflow.log_metric(metric, value)


def _log_best(metric: str, result: SearchResult) -> None:
    mlflow = _active_mlflow()
    if mlflow is None:
        return
    mlflow.log_metric(f"tune.best_{metric}", result.best_value)
    mlflow.log_params({f"tune.best.{path}": value for path, value in result.best_values.items()})
