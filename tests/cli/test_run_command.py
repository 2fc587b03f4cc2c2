"""The project's ``kedro run`` is Kedro's own, which ends its process fast only where it is the
``kedro`` command (the end-to-end tests run it; ``test_no_torch_in_ingest`` reads what an exit
handler of that process wrote)."""

from __future__ import annotations

import sys
import types

import click
import pytest
from kedro.framework.cli.project import run as kedro_run

from llm_pipeline.cli import _is_the_kedro_command, cli


def test_the_projects_run_takes_kedros_options_and_help():
    run = cli.get_command(click.Context(cli), "run")
    assert run is not kedro_run
    assert [param.opts for param in run.params] == [param.opts for param in kedro_run.params]
    assert run.help == kedro_run.help
    assert run.callback.__wrapped__ is kedro_run.callback


def test_only_the_kedro_command_itself_leaves_without_teardown(monkeypatch):
    assert not _is_the_kedro_command()  # pytest: a run here ends as Kedro's does
    monkeypatch.setattr(sys, "argv", ["/venv/bin/kedro", "run"])
    assert _is_the_kedro_command()
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/site-packages/kedro/__main__.py", "run"])
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="kedro.__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert _is_the_kedro_command()
    main.__spec__ = types.SimpleNamespace(name="my_scheduler")
    assert not _is_the_kedro_command()


def test_a_tool_run_as_a_module_imports_no_kedro_command_line():
    """Kedro's command line configures Kedro's logging when imported: a tool's own log lines
    (to standard error) would go elsewhere."""
    import subprocess

    code = "import sys, llm_pipeline.cli; print('kedro.framework.project' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("arguments", "advice"),
    [
        (["--runner", "ParallelRunner"], "Leave out --runner."),
        (["--runner", "kedro.runner.ThreadRunner"], "Leave out --runner."),
        (["--async"], "Leave out --async."),
        (["--runner-params", "is_async=True"], "Leave out --async."),
    ],
)
def test_a_runner_that_would_split_or_break_the_mlflow_run_is_refused_before_the_run(
    arguments, advice, monkeypatch
):
    """Each was seen on this project: the ParallelRunner refuses kedro-mlflow's datasets, two
    ThreadRunner threads logged the parameters at once and the run failed, and --async left the
    artifacts in four extra MLflow runs. The refusal comes before Kedro looks for a project
    (there is none in pytest's folder)."""
    from click.testing import CliRunner

    called = []
    monkeypatch.setattr(kedro_run, "callback", lambda *a, **k: called.append(k))
    result = CliRunner().invoke(cli, ["run", *arguments])
    assert result.exit_code == 2, result.output
    assert "kedro-mlflow" in result.output and advice in result.output
    assert called == []


def test_the_sequential_runner_and_a_runner_kedro_cannot_load_go_on_to_kedro(monkeypatch):
    from click.testing import CliRunner

    called = []
    monkeypatch.setattr(kedro_run, "callback", lambda *a, **k: called.append(k["runner"]))
    for arguments in ([], ["--runner", "SequentialRunner"], ["--runner", "NoSuchRunner"]):
        assert CliRunner().invoke(cli, ["run", *arguments]).exit_code == 0
    assert called == [None, "SequentialRunner", "NoSuchRunner"]
