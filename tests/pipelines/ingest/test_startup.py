"""`kedro run --pipeline ingest` starts fast: it never imports torch, transformers or trl."""

from __future__ import annotations

import sys

from support import copy_project, run_command

PROBE = """
import sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path.cwd())
with KedroSession.create(project_path=Path.cwd(), env="tiny") as session:
    session.run(pipeline_names=["ingest"])
heavy = [m for m in ("torch", "transformers", "trl", "great_expectations") if m in sys.modules]
print("HEAVY:", ",".join(heavy))
"""


def test_ingest_imports_no_training_library(small_raw_data, tmp_path):
    project = copy_project(tmp_path, small_raw_data)
    result = run_command([sys.executable, "-c", PROBE], cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY: \n" in result.stdout
    assert (project / "data/02_intermediate/conversations_train.jsonl").exists()
