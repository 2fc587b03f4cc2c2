"""What passes between a training job and its caller: a handle to a folder, never weights.

The Kedro datasets that move these folders into place are in ``datasets/model_folder.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm_pipeline.training.jobs import RUN_CONFIG_FILE

# The one file of a model folder whose stage chose to train nothing, with the reason.
NOT_TRAINED_FILE = "not_trained.json"


@dataclass(frozen=True)
class Folder:
    """A folder of files made by one node, such as a static HTML site."""

    path: Path


@dataclass(frozen=True)
class ModelFolder(Folder):
    """A folder holding a Hugging Face model or tokenizer and the config it was made with."""

    def read_run_config(self) -> dict[str, Any]:
        """The resolved config that produced this folder (empty when made elsewhere)."""
        config = self.path / RUN_CONFIG_FILE
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) if config.exists() else None
        return loaded or {}

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    @property
    def not_trained(self) -> str | None:
        """Why the stage trained no model into this folder, or None when it holds one."""
        if not (self.path / NOT_TRAINED_FILE).exists():
            return None
        return str(self.read_json(NOT_TRAINED_FILE)["reason"])

    @classmethod
    def untrained(cls, path: Path, reason: str) -> ModelFolder:
        """A folder at ``path`` that says a model was not trained, and why."""
        path.mkdir(parents=True, exist_ok=True)
        (path / NOT_TRAINED_FILE).write_text(json.dumps({"reason": reason}), encoding="utf-8")
        return cls(path)
