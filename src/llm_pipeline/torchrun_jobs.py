"""The Kedro side of a training job: stage its data, launch it under torchrun, hand back a folder.

Nodes pass tables in and get a ``ModelFolder`` back; the catalog moves that folder into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import ModelFolder
from llm_pipeline.training.launch import LaunchConfig, launch


def write_json_lines(frame: pd.DataFrame, path: Path, columns: list[str]) -> Path:
    """The ``columns`` of ``frame`` as JSON Lines, what the training entrypoints read."""
    with path.open("w", encoding="utf-8") as handle:
        for record in frame[columns].to_dict(orient="records"):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def run_training_job(
    module: str,
    job: dict[str, Any],
    tables: dict[str, tuple[pd.DataFrame, list[str]]],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """Run ``module`` under torchrun on ``tables`` and return the model folder it saved.

    ``tables`` maps a job field (``train_file``) to a table and the columns to write. Data and
    checkpoints live in a temporary folder that is removed afterwards; the model folder is a
    separate temporary folder that the catalog moves into place.
    """
    output_dir = Path(tempfile.mkdtemp(prefix="llm-pipeline-model-"))
    try:
        with tempfile.TemporaryDirectory(prefix="llm-pipeline-job-") as workdir:
            work = Path(workdir)
            files = {
                field: write_json_lines(frame, work / f"{field}.jsonl", columns)
                for field, (frame, columns) in tables.items()
            }
            full_job = {
                **job,
                **files,
                "output_dir": output_dir,
                "checkpoint_dir": work / "checkpoints",
            }
            launch(module, full_job, LaunchConfig.model_validate(launch_params), work)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return ModelFolder(output_dir)
