#!/usr/bin/env python3
"""Should the scheduled retraining run? Asks ``dvc status --json`` what changed since dvc.lock.

Used by .github/workflows/retrain.yml after ``dvc pull``: it retrains when a stage's data,
parameters, code or command changed, or its outputs are missing, and says which in the job
summary either way. Writes ``retrain=true|false`` to $GITHUB_OUTPUT and a Markdown table to
$GITHUB_STEP_SUMMARY when those are set (as on GitHub Actions); always prints the decision.
Runs with the project's environment (PyYAML reads dvc.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# What each kind of change is called in the summary, in the order it is listed.
KINDS = {
    "data": "data changed",
    "params": "parameters changed",
    "code": "code changed",
    "command": "command changed",
    "outputs": "outputs missing or changed",
    "always": "always changed",
}


@dataclass(frozen=True)
class Change:
    """One reason ``dvc repro`` would run ``stage``: a kind from KINDS and what changed."""

    stage: str
    kind: str
    detail: str


def dvc_status(repo: Path, dvc: str = "dvc") -> dict[str, Any]:
    """``dvc status --json`` of the pipelines in ``repo``: {stage or .dvc file: [changes]}."""
    try:
        result = subprocess.run(
            [dvc, "status", "--json"], cwd=repo, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise SystemExit(f"{dvc} not found: install the project (make setup) first.") from None
    if result.returncode != 0:
        raise SystemExit(
            f"`dvc status --json` failed in {repo} with exit code {result.returncode}:\n"
            f"{result.stderr.strip()}\nFix dvc.yaml or the DVC remote, then run again."
        )
    text = result.stdout.strip()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise SystemExit(f"`dvc status --json` printed no JSON ({error}):\n{text}") from None


def params_files(repo: Path) -> set[str]:
    """The parameters files that the stages of ``repo``'s dvc.yaml read."""
    dvc_yaml = repo / "dvc.yaml"
    if not dvc_yaml.exists():
        return set()
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    files = set()
    for stage in stages.values():
        for entry in stage.get("params", []):
            # A bare key is read from DVC's default params.yaml.
            files.update(entry if isinstance(entry, dict) else ["params.yaml"])
    return files


def changes_from_status(
    status: dict[str, Any], data_dir: str = "data", params: set[str] = frozenset()
) -> list[Change]:
    """Every change in a ``dvc status --json`` answer, classified.

    A parameters file (a path in ``params``, or reported with the changed keys) is params, a
    dependency under ``data_dir`` is data, any other dependency is code. A ``.dvc`` file whose
    data differs from the workspace is data. Shapes this does not know are kept, under their
    own name, so that an unknown change still retrains rather than being missed.
    """
    changes = []
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, str):
                changes.append(_named_change(stage, entry))
                continue
            for key, paths in entry.items():
                changes.extend(_path_changes(stage, key, paths, data_dir, params))
    return changes


def _named_change(stage: str, text: str) -> Change:
    kind = {"changed command": "command", "always changed": "always"}.get(text, text)
    return Change(stage, kind, text)


def _path_changes(
    stage: str, key: str, paths: Any, data_dir: str, params: set[str]
) -> list[Change]:
    if not isinstance(paths, dict):
        return [Change(stage, key, str(paths))]
    changes = []
    for path, state in paths.items():
        if key == "changed deps" and isinstance(state, dict):
            keys = ", ".join(f"{name} {how}" for name, how in state.items())
            changes.append(Change(stage, "params", f"{path}: {keys}"))
        elif key == "changed deps" and path in params:
            changes.append(Change(stage, "params", f"{path} {state}"))
        elif key == "changed deps":
            kind = "data" if _is_under(path, data_dir) else "code"
            changes.append(Change(stage, kind, f"{path} {state}"))
        elif key == "changed outs" and stage.endswith(".dvc"):
            changes.append(Change(stage, "data", f"{path} {state}"))
        elif key == "changed outs":
            changes.append(Change(stage, "outputs", f"{path} {state}"))
        else:
            changes.append(Change(stage, key, f"{path} {state}"))
    return changes


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def summary_markdown(changes: list[Change]) -> str:
    """The job summary: why this run retrains, or why it does not."""
    if not changes:
        return (
            "## Retraining skipped\n\n"
            "`dvc status` shows no stage whose data, parameters, code or outputs changed since "
            "the run recorded in `dvc.lock`: there is nothing to retrain.\n"
        )
    kinds = sorted({change.kind for change in changes}, key=_kind_order)
    lines = [
        "## Retraining\n",
        f"`dvc status`: {', '.join(KINDS.get(kind, kind) for kind in kinds)}.\n",
        "| stage | change | what |",
        "| --- | --- | --- |",
    ]
    for change in sorted(changes, key=lambda change: (change.stage, _kind_order(change.kind))):
        what = change.detail.replace("|", "\\|")
        lines.append(f"| {change.stage} | {KINDS.get(change.kind, change.kind)} | `{what}` |")
    return "\n".join(lines) + "\n"


def _kind_order(kind: str) -> int:
    return list(KINDS).index(kind) if kind in KINDS else len(KINDS)


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the DVC project")
    parser.add_argument("--dvc", default="dvc", help="the dvc command (default: on PATH)")
    parser.add_argument("--data-dir", default="data", help="dependencies under it are data")
    args = parser.parse_args(argv)

    status = dvc_status(args.repo, args.dvc)
    changes = changes_from_status(status, args.data_dir, params_files(args.repo))
    summary = summary_markdown(changes)
    _append(os.environ.get("GITHUB_OUTPUT"), f"retrain={'true' if changes else 'false'}\n")
    _append(os.environ.get("GITHUB_STEP_SUMMARY"), summary)
    sys.stdout.write(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
