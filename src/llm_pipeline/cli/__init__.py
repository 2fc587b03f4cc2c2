"""Command-line tools: champion moves, the review page, the team server, the sample data.

Each is a module, ``python -m llm_pipeline.cli.<tool> ...``, and, in the project's folder, a
``kedro`` command of the same name (``kedro champion status``, ``kedro review serve``,
``kedro sample-data``, ``kedro team-server``): Kedro loads the ``cli`` group of
``<package>.cli`` as the project's own commands, beside ``kedro run``. A command hands its
arguments to the tool's own parser as they are, so both ways take the same arguments.

The group also holds the project's ``kedro run``: Kedro's own command, options and all, which
ends the process without the interpreter's teardown once the run succeeded (``_fast_run``).

Nothing in the pipeline imports from here: tools use the stages and shared packages. A tool's
module is imported only when its command runs, so ``kedro run`` pays nothing for them.
"""

from __future__ import annotations

import copy
import functools
import importlib
import sys
from pathlib import Path
from typing import Any

import click

from llm_pipeline.process_exit import exit_without_teardown

# Each command and the line ``kedro --help`` shows for it; its module is the name with "_".
TOOLS = {
    "champion": "Approve a waiting version, roll champion back, or show the aliases.",
    "review": "Judge pairs of answers on a local page; bring the choices back.",
    "sample-data": "Write the sample data set (Northwind Outfitters) into a folder.",
    "team-server": "Run the team's MLflow tracking server (PostgreSQL, auth).",
}


class _Tools(click.Group):
    """The tools, and ``run`` made when Kedro asks for it (``_fast_run``): importing Kedro's
    command line configures Kedro's logging, which a tool run as a module must not get."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "run"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "run":
            return _fast_run()
        return super().get_command(ctx, cmd_name)


@click.group(name="llm-pipeline", cls=_Tools)
def cli() -> None:
    """llm-pipeline's tools."""


def _add_tool(name: str, summary: str) -> None:
    module = name.replace("-", "_")

    @cli.command(
        name=name,
        help=f"{summary} Arguments as for python -m llm_pipeline.cli.{module}; --help lists them.",
        short_help=summary,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
        add_help_option=False,
    )
    @click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
    def command(arguments: tuple[str, ...]) -> None:
        main = importlib.import_module(f"{__name__}.{module}").main
        raise SystemExit(main(list(arguments)))


for _name, _summary in TOOLS.items():
    _add_tool(_name, _summary)


def _fast_run() -> click.Command:
    """Kedro's ``kedro run`` (the same options, session and hooks), which, when it succeeded in
    the ``kedro`` command's own process, does what Kedro's command line does after a command
    (its CLI hooks' ``after_command_run``, e.g. kedro-telemetry's) and ends the process without
    the interpreter's teardown: after a run that loaded torch, transformers and MLflow, 2.3 s
    of every ``kedro run`` and of every ``dvc repro`` stage on a 2-core host (measured
    2026-12-07). A failed run, or one called inside another program (click's test runner, a
    script calling Kedro's ``main``), ends as Kedro's does."""
    from kedro.framework.cli.hooks import get_cli_hook_manager
    from kedro.framework.cli.project import run as kedro_run

    command = copy.copy(kedro_run)

    @functools.wraps(kedro_run.callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        refuse_unsupported_runner(
            kwargs.get("runner"), kwargs.get("is_async", False), kwargs.get("runner_params") or {}
        )
        result = kedro_run.callback(*args, **kwargs)
        if _is_the_kedro_command():
            get_cli_hook_manager().hook.after_command_run(
                project_metadata=click.get_current_context().find_root().obj,
                command_args=sys.argv[1:],
                exit_code=0,
            )
            exit_without_teardown(0)
        return result

    command.callback = run
    return command


def refuse_unsupported_runner(runner: str | None, is_async: bool, runner_params: dict) -> None:
    """Stop before the run, with the reason, where kedro-mlflow cannot keep the run's record:
    ``--runner ParallelRunner`` (its artifact datasets cannot be pickled into the worker
    processes: Kedro refuses them, kedro-mlflow issue #624), ``--runner ThreadRunner`` (two
    threads can log the run's parameters at once, and MLflow's store refuses the duplicate: one
    of two runs failed so) and ``--async`` or ``--runner-params is_async=True`` (the saving
    threads' artifacts land in new MLflow runs of their own, left RUNNING, not in the run:
    kedro-mlflow issue #646; Kedro suggests the flag in every run's log). Each was seen on this
    project with kedro 1.7 and kedro-mlflow 2.0.3 (docs/stack-notes.md). A runner Kedro cannot
    load is left to Kedro's own error."""
    from kedro.runner import SequentialRunner
    from kedro.utils import load_obj

    try:
        chosen = load_obj(runner or "SequentialRunner", "kedro.runner")
    except (AttributeError, ImportError, ValueError):
        return
    cores = "the training nodes already use every core (and GPU) through torchrun"
    if not (isinstance(chosen, type) and issubclass(chosen, SequentialRunner)):
        raise click.UsageError(
            f"--runner {runner}: this project runs with Kedro's SequentialRunner (the default) "
            "only. kedro-mlflow's artifact datasets cannot be pickled into the ParallelRunner's "
            "processes, and under the ThreadRunner two threads can log the run's parameters at "
            f"once, which MLflow refuses; {cores}. Leave out --runner."
        )
    if is_async or runner_params.get("is_async") is True:
        raise click.UsageError(
            "--async (is_async): kedro-mlflow logs what the asynchronous saving threads save "
            "into new MLflow runs of their own instead of this run, which would split the run's "
            f"record and lineage in MLflow; {cores}. Leave out --async."
        )


def _is_the_kedro_command() -> bool:
    """Whether this process is the ``kedro`` command (its script, or ``python -m kedro``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return Path(sys.argv[0]).stem == "kedro" or getattr(spec, "name", "") in {
        "kedro",
        "kedro.__main__",
    }
