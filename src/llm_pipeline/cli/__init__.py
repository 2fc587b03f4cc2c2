"""Command-line tools: champion moves, the review page, the team server, the sample data.

Each is a module, ``python -m llm_pipeline.cli.<tool> ...``, and, in the project's folder, a
``kedro`` command of the same name (``kedro champion status``, ``kedro review serve``,
``kedro sample-data``, ``kedro team-server``): Kedro loads the ``cli`` group of
``<package>.cli`` as the project's own commands, beside ``kedro run``. A command hands its
arguments to the tool's own parser as they are, so both ways take the same arguments.

Nothing in the pipeline imports from here: tools use the stages and shared packages. A tool's
module is imported only when its command runs, so ``kedro run`` pays nothing for them.
"""

from __future__ import annotations

import importlib

import click

# Each command and the line ``kedro --help`` shows for it; its module is the name with "_".
TOOLS = {
    "champion": "Approve a waiting version, roll champion back, or show the aliases.",
    "review": "Judge pairs of answers on a local page; bring the choices back.",
    "sample-data": "Write the sample data set (Northwind Outfitters) into a folder.",
    "team-server": "Run the team's MLflow tracking server (PostgreSQL, auth).",
}


@click.group(name="llm-pipeline")
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
