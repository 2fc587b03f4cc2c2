"""The MLflow Model Registry as a catalog entry.

Loading gives the registered version behind an alias (or ``None``); saving logs a model folder
with the transformers flavour into the active run, registers it and sets the aliases and tags the
register stage decided. Nodes stay free of ``mlflow`` calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import version
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

        from llm_pipeline.training.models import is_adapter_folder, load_causal_lm

        if mlflow.active_run() is None:
            raise DatasetError("Registering a model needs an active MLflow run (kedro-mlflow).")
        path = str(data.model.path)
        if is_adapter_folder(path):
            raise DatasetError(
                f"{path} is a soft prompt (finetune.method: prompt_tuning) on a local base model, "
                "which the MLflow transformers flavour cannot register. Register a model made "
                "with finetune.method full or lora, or stop before registering "
                "(kedro run --pipelines finetune,align,evaluate)."
            )
        components = {
            "model": load_causal_lm(path),
            "tokenizer": AutoTokenizer.from_pretrained(path),
        }
        info = mlflow.transformers.log_model(
            transformers_model=components,
            name="model",
            task=self._task,
            pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in _SERVING_PACKAGES],
            registered_model_name=self._name,
        )
        registered = info.registered_model_version
        client = mlflow.MlflowClient()
        for key, value in data.tags.items():
            client.set_model_version_tag(self._name, registered, key, value)
        for alias in data.aliases:
            client.set_registered_model_alias(self._name, alias, registered)
        logger.info(
            "Registered %s version %s with aliases %s", self._name, registered, list(data.aliases)
        )

    def _describe(self) -> dict[str, Any]:
        return {"registered_model_name": self._name, "alias": self._alias, "task": self._task}
