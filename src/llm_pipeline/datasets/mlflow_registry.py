"""The MLflow Model Registry as a catalog entry.

Loading gives the registered version behind an alias (or ``None``); saving logs a model folder
with the transformers flavour into the active run, registers it and sets the aliases and tags the
register stage decided. Nodes stay free of ``mlflow`` calls.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)

# Pinned explicitly: MLflow's inference of requirements imports torchvision, which this stack
# must never install (see README, "Stack notes").
_SERVING_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate")


@dataclass(frozen=True)
class RegistryCandidate:
    """A model to register, with the aliases it earns and the tags that explain why."""

    model: ModelFolder
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)


class MlflowRegistryDataset(AbstractDataset[RegistryCandidate, dict[str, Any] | None]):
    """Versions of one registered model: load the one behind ``alias``; save a new one."""

    def __init__(
        self,
        registered_model_name: str,
        alias: str | None = None,
        task: str = "llm/v1/chat",
        metadata: dict[str, Any] | None = None,
    ):
        self._name = registered_model_name
        self._alias = alias
        self._task = task
        self.metadata = metadata

    def load(self) -> dict[str, Any] | None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        if self._alias is None:
            raise DatasetError(f"Set 'alias' to load a version of '{self._name}'.")
        try:
            found = MlflowClient().get_model_version_by_alias(self._name, self._alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return {
            "name": found.name,
            "version": int(found.version),
            "run_id": found.run_id,
            "source": found.source,
            "tags": dict(found.tags),
        }

    def save(self, data: RegistryCandidate) -> None:
        import mlflow
        from transformers import AutoTokenizer

        from llm_pipeline.training.models import (
            is_adapter_folder,
            load_causal_lm,
            merge_soft_prompt,
        )

        if mlflow.active_run() is None:
            raise DatasetError("Registering a model needs an active MLflow run (kedro-mlflow).")
        with tempfile.TemporaryDirectory(prefix="llm-pipeline-register-") as scratch:
            path = str(data.model.path)
            if is_adapter_folder(path):
                # A soft prompt becomes special tokens of a plain model: the registered model
                # then needs neither PEFT nor the base model's folder.
                path = str(merge_soft_prompt(path, Path(scratch) / "merged"))
            components = {
                "model": load_causal_lm(path),
                "tokenizer": AutoTokenizer.from_pretrained(path),
            }
            info = self._log(components)
        registered = info.registered_model_version
        client = mlflow.MlflowClient()
        for key, value in data.tags.items():
            client.set_model_version_tag(self._name, registered, key, value)
        for alias in data.aliases:
            client.set_registered_model_alias(self._name, alias, registered)
        logger.info(
            "Registered %s version %s with aliases %s", self._name, registered, list(data.aliases)
        )

    def _log(self, components: dict[str, Any]) -> Any:
        import mlflow

        return mlflow.transformers.log_model(
            transformers_model=components,
            name="model",
            task=self._task,
            pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in _SERVING_PACKAGES],
            registered_model_name=self._name,
        )

    def _describe(self) -> dict[str, Any]:
        return {"registered_model_name": self._name, "alias": self._alias, "task": self._task}
