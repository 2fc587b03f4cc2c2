"""Hugging Face model and tokenizer folders as catalog entries.

Training runs in torchrun workers that write a folder; what passes through the Kedro catalog is a
``ModelFolder`` handle, never weights in memory. Saving moves the folder into place atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from kedro.io import AbstractVersionedDataset, DatasetError
from kedro.io.core import Version

from llm_pipeline.datasets._atomic import replace_directory_atomically
from llm_pipeline.training.jobs import RUN_CONFIG_FILE


@dataclass(frozen=True)
class ModelFolder:
    """A folder holding a Hugging Face model or tokenizer and the config it was made with."""

    path: Path

    def read_run_config(self) -> dict[str, Any]:
        """The resolved config that produced this folder (empty when made elsewhere)."""
        config = self.path / RUN_CONFIG_FILE
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) if config.exists() else None
        return loaded or {}

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text(encoding="utf-8"))


class ModelFolderDataset(AbstractVersionedDataset[ModelFolder, ModelFolder]):
    """A model folder at ``path``; with ``versioned: true`` one sub-folder per run."""

    def __init__(
        self,
        path: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(PurePosixPath(path), version)
        self.metadata = metadata

    def load(self) -> ModelFolder:
        path = Path(self._get_load_path().as_posix())
        if not (path / "config.json").exists() and not (path / "tokenizer.json").exists():
            raise DatasetError(
                f"{path} holds no Hugging Face model or tokenizer (no config.json or "
                "tokenizer.json): run the stage that makes it first."
            )
        return ModelFolder(path)

    def save(self, data: ModelFolder) -> None:
        if not isinstance(data, ModelFolder):
            raise DatasetError(f"Expected a ModelFolder, got {type(data).__name__}.")
        target = Path(self._get_save_path().as_posix())
        replace_directory_atomically(Path(data.path), target)

    def _exists(self) -> bool:
        return Path(self._get_load_path().as_posix()).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._filepath.as_posix(), "version": self._version}
