"""The tools as `kedro` commands in the project's folder: Kedro loads ``llm_pipeline.cli``'s
group as the project's own commands, and each hands its arguments to the tool's parser."""

from __future__ import annotations

import json

from support import PROJECT_ROOT, run_command, tool

from llm_pipeline.cli import TOOLS


def test_kedro_lists_every_tool_beside_its_own_commands():
    result = run_command([tool("kedro"), "--help"], cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = result.stdout.split("Project specific commands from llm-pipeline")[1]
    for name in TOOLS:
        assert f"\n  {name} " in listed, name
    assert "\n  run " in result.stdout  # Kedro's own commands are still there


def test_a_command_hands_its_arguments_to_the_tools_parser(tmp_path):
    shown = run_command([tool("kedro"), "champion", "--help"], cwd=PROJECT_ROOT)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "{status,approve,rollback}" in shown.stdout

    root = tmp_path / "01_raw"
    written = run_command(
        [tool("kedro"), "sample-data", str(root), "--scale", "small", "--seed", "3"],
        cwd=PROJECT_ROOT,
    )
    assert written.returncode == 0, written.stderr[-3000:]
    rows = (root / "validation" / "validation_set.jsonl").read_text().splitlines()
    assert rows and json.loads(rows[0])["prompt"]

    refused = run_command([tool("kedro"), "sample-data", "--scale", "huge"], cwd=PROJECT_ROOT)
    assert refused.returncode == 2 and "invalid choice: 'huge'" in refused.stderr
