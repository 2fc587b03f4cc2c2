"""The people's side of the quality gate: approve a waiting version, roll champion back.

    python -m llm_pipeline.cli.champion status
    python -m llm_pipeline.cli.champion approve --version 7 --approver alice
    python -m llm_pipeline.cli.champion rollback [--to 5] --by alice

The tracking server is ``MLFLOW_TRACKING_URI`` (default: the embedded ``sqlite:///mlflow.db``
that ``kedro run`` writes). Every move is recorded as tags on the versions involved, so the
registry shows who moved ``champion``, when and why.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_NAME = "llm-pipeline"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class RegistryError(RuntimeError):
    """A move the registry's records do not allow."""


def champion_version(client: Any, name: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException:
        return None


def approve(client: Any, name: str, version: int, approver: str) -> int | None:
    """Make a version that passed the gate and waits for approval champion; the previous
    champion (returned) is recorded on it for rollback."""
    found = client.get_model_version(name, str(version))
    if found.tags.get("promotion.eligible") != "true":
        raise RegistryError(
            f"{name} v{version} did not pass the quality gate "
            f"({found.tags.get('promotion.reason', 'no decision recorded')}): "
            "it cannot be approved."
        )
    if found.tags.get("promotion.approval") != "pending":
        raise RegistryError(f"{name} v{version} is not waiting for approval.")
    previous = champion_version(client, name)
    _move_champion(client, name, version, previous)
    now = _now()
    for key, value in {
        "promotion.approval": f"approved by {approver} at {now}",
        "promotion.decision": "champion",
    }.items():
        client.set_model_version_tag(name, str(version), key, value)
    return previous


def rollback(client: Any, name: str, to: int | None, by: str) -> int:
    """Move champion back to ``to``, or to the version the current champion replaced."""
    current = champion_version(client, name)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back.")
    if to is None:
        recorded = client.get_model_version(name, str(current)).tags.get(
            "promotion.previous_champion", "none"
        )
        if recorded in ("", "none"):
            raise RegistryError(
                f"{name} v{current} replaced no earlier champion: name one with --to."
            )
        to = int(recorded)
    client.get_model_version(name, str(to))  # fails loudly on an unknown version
    client.set_registered_model_alias(name, "champion", str(to))
    now = _now()
    client.set_model_version_tag(name, str(current), "promotion.rolled_back", f"by {by} at {now}")
    client.set_model_version_tag(
        name, str(to), "promotion.restored", f"by {by} at {now}, replacing v{current}"
    )
    return to


def _move_champion(client: Any, name: str, version: int, previous: int | None) -> None:
    client.set_model_version_tag(
        name, str(version), "promotion.previous_champion", str(previous or "none")
    )
    client.set_registered_model_alias(name, "champion", str(version))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def status_lines(client: Any, name: str) -> list[str]:
    """One line per version, newest first: aliases, decision and reason."""
    lines = []
    for found in sorted(
        client.search_model_versions(f"name='{name}'"), key=lambda v: -int(v.version)
    ):
        aliases = ",".join(found.aliases) or "-"
        lines.append(
            f"v{found.version} [{aliases}] {found.tags.get('promotion.decision', '?')}: "
            f"{found.tags.get('promotion.reason', '')}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    import mlflow

    parser = argparse.ArgumentParser(
        prog="python -m llm_pipeline.cli.champion", description=__doc__
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="registered model name")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="versions, aliases and decisions")
    approving = commands.add_parser("approve", help="make a waiting version champion")
    approving.add_argument("--version", type=int, required=True)
    approving.add_argument("--approver", required=True)
    rolling = commands.add_parser("rollback", help="move champion back")
    rolling.add_argument("--to", type=int, default=None, help="default: the previous champion")
    rolling.add_argument("--by", default=os.environ.get("USER", "unknown"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    client = mlflow.MlflowClient()
    try:
        if args.command == "status":
            for line in status_lines(client, args.name):
                logger.info(line)
        elif args.command == "approve":
            previous = approve(client, args.name, args.version, args.approver)
            logger.info("%s v%s is champion (was v%s)", args.name, args.version, previous)
        else:
            restored = rollback(client, args.name, args.to, args.by)
            logger.info("%s champion is v%s again", args.name, restored)
    except RegistryError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
