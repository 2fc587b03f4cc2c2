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
