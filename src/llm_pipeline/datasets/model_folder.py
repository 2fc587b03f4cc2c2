"""Folders as catalog entries: Hugging Face model and tokenizer folders, report sites.

Training runs in torchrun workers that write a folder; what passes through the Kedro catalog is a
handle to it, never weights in memory. Saving moves the folder into place atomically.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractVersionedDataset, DatasetError
from kedro.io.core import Version

from llm_pipeline.datasets._atomic import replace_directory_atomically
from llm_pipeline.training.folders import NOT_TRAINED_FILE, Folder, ModelFolder


class FolderDataset(AbstractVersionedDataset[Folder, Folder]):
    """A folder at ``path``; with ``versioned: true`` one sub-folder per run.

    With ``mlflow_artifact_path`` the saved folder is also logged to the active MLflow run
    (kedro-mlflow's artifact dataset logs single files only).
    """

    def __init__(
        self,
        path: str,
        version: Version | None = None,
        mlflow_artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(PurePosixPath(path), version)
        self._mlflow_artifact_path = mlflow_artifact_path
        self.metadata = metadata

    def load(self) -> Folder:
        path = Path(self._get_load_path().as_posix())
        if not path.is_dir():
            raise DatasetError(f"{path} does not exist: run the stage that makes it first.")
        return Folder(path)

    def save(self, data: Folder) -> None:
        if not isinstance(data, Folder):
            raise DatasetError(f"Expected a Folder, got {type(data).__name__}.")
        target = Path(self._get_save_path().as_posix())
        replace_directory_atomically(Path(data.path), target)
        if self._mlflow_artifact_path is not None:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_artifacts(str(target), self._mlflow_artifact_path)

    def _exists(self) -> bool:
        return Path(self._get_load_path().as_posix()).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._filepath.as_posix(), "version": self._version}


class ModelFolderDataset(FolderDataset):
    """A Hugging Face model or tokenizer folder; loading checks that it holds one, or says why
    its stage trained none (``ModelFolder.not_trained``)."""

    def load(self) -> ModelFolder:
        path = Path(self._get_load_path().as_posix())
        if (path / NOT_TRAINED_FILE).exists():
            return ModelFolder(path)
        if not (path / "config.json").exists() and not (path / "tokenizer.json").exists():
            raise DatasetError(
                f"{path} holds no Hugging Face model or tokenizer (no config.json or "
                "tokenizer.json): run the stage that makes it first."
            )
        return ModelFolder(path)
