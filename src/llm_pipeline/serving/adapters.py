"""A registered version that holds adapters (LoRA, a soft prompt) instead of weights, over a
pinned base.

A candidate made by LoRA stages keeps each stage's adapter; a soft prompt's folder is one
(``training.models.adapter_chain``). With ``register.weights: adapters`` the registry logs the
candidate's folder without its weights, the adapters under ``ADAPTERS_FOLDER/<n>`` in the order
they were trained, and ``BASE_FILE``: the registered base version they apply to, pinned by the
SHA-256 of its weight files (``weights_digest``) and their sizes. The base is registered once,
as a version of its own (``<name>-base``), and every adapter version over the same weights
names that one version: at 8B-70B a version then costs megabytes, not the model's size, as long
as the base stays the same (the fine-tune starting from a pinned model,
``finetune_starting_model``). The base version also carries the fingerprint of the files it was
registered from (``weights_fingerprint``: path, size, time and inode, read without reading the
files), so a later registration over the same untouched files finds it without reading every
byte again (about 1.5 minutes at 70B).

Loading such a version (serving, or the champion for evaluation) downloads the base version,
checks it is the pinned one, and folds the LoRA adapters into it in fp32, in order: the weights
the register stage's candidate had (``merge_adapter_folder`` folded them the same way). A soft
prompt stays a PEFT model around the base.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_FILE = "base_model.json"
ADAPTERS_FOLDER = "adapters"
# Tags of a registered base version and of the adapter versions over it.
DIGEST_TAG = "weights.sha256"
# And of a base version: the fingerprint of the local files it was last found to be.
FILES_TAG = "weights.files"
WEIGHTS_TAG = "weights"
# The files of a model folder that hold or shape its weights (not its tokenizer or logs).
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "config.json")


def weight_files(folder: Path) -> list[Path]:
    """The top-level files of ``folder`` that hold or shape its weights, sorted by name."""
    return sorted({path for pattern in _WEIGHT_PATTERNS for path in folder.glob(pattern)})


def weights_digest(folder: Path) -> tuple[str, dict[str, int]]:
    """The SHA-256 of ``folder``'s weight files (each file's name and SHA-256, in name order)
    and their sizes. Every byte is read, at registering only, and only over files no base
    version has the fingerprint of (``weights_fingerprint``; training's fingerprints use
    sizes): 1.4-1.6 GB/s from the page cache in ``bench/digests.py``, about 1.5 minutes for 70B
    in bf16 (140 GB), more from disk."""
    from llm_pipeline.training import manifests

    sizes = weight_sizes(folder)
    if "config.json" not in sizes or len(sizes) < 2:
        raise ValueError(f"{folder} holds no model weights (config.json and weight files).")
    lines = "".join(
        f"{path.name}\0{manifests.file_sha256(path)}\n" for path in weight_files(folder)
    )
    return hashlib.sha256(lines.encode()).hexdigest(), sizes


def weight_sizes(folder: Path) -> dict[str, int]:
    """The size of each of ``folder``'s weight files, by name."""
    return {path.name: path.stat().st_size for path in weight_files(folder)}


def weights_fingerprint(folder: Path) -> str:
    """What this machine's file system says of ``folder``'s weight files, read without reading
    them: host, real path, size, modification time in nanoseconds and inode, hashed. Equal
    fingerprints mean the files were not written since, the rule make, rsync and git's index
    trust; the one change it misses is a file written again in place that keeps its size and
    its nanosecond time."""
    facts: list[Any] = [socket.gethostname()]
    for path in weight_files(folder):
        stat = path.stat()
        facts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def stage_adapter_version(
    candidate: Path, adapters: list[Path], base_folder: Path, base: dict[str, Any], to: Path
) -> None:
    """Into ``to``: ``candidate``'s folder without its weights (tokenizer, config, run config
    and logs), its ``adapters`` under ``ADAPTERS_FOLDER/<n>`` and the reference to ``base``,
    the registered version of ``base_folder``."""
    ignored = shutil.ignore_patterns(
        "*.safetensors", "*.bin", "*.safetensors.index.json", "lora_adapter", "adapter_config.json"
    )
    shutil.copytree(candidate, to, ignore=ignored)
    if not (to / "config.json").exists():  # a soft prompt's folder: the base's architecture
        shutil.copy(base_folder / "config.json", to / "config.json")
    for number, adapter in enumerate(adapters):
        target = to / ADAPTERS_FOLDER / f"{number:02d}"
        shutil.copytree(adapter, target)
        config_file = target / "adapter_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        # The training machine's path means nothing to whoever loads the version.
        config["base_model_name_or_path"] = None
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (to / BASE_FILE).write_text(json.dumps(base, indent=2), encoding="utf-8")


def is_adapter_version(folder: Path | str) -> bool:
    """True for a logged model folder that holds adapters over a registered base."""
    return (Path(folder) / BASE_FILE).is_file()


def base_reference(folder: Path | str) -> dict[str, Any]:
    """The registered base version an adapter version's folder applies to."""
    return json.loads((Path(folder) / BASE_FILE).read_text(encoding="utf-8"))


@contextmanager
def downloaded_base(reference: dict[str, Any]) -> Iterator[Path]:
    """The pinned base version's model folder, downloaded from the registry for the block: it
    must still carry the digest the adapters were registered with, and its weight files the
    recorded sizes."""
    import mlflow

    name, version = reference["registered_model"], reference["version"]
    found = mlflow.MlflowClient().get_model_version(name, str(version))
    if found.tags.get(DIGEST_TAG) != reference["sha256"]:
        raise ValueError(
            f"{name} version {version} is not the base these adapters were trained on: its "
            f"{DIGEST_TAG} tag is {found.tags.get(DIGEST_TAG)!r}, the adapters name "
            f"{reference['sha256']!r}."
        )
    with tempfile.TemporaryDirectory(prefix="llm-pipeline-base-") as scratch:
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=scratch
            )
        )
        folders = logged_folders(downloaded)
        if not folders:
            raise ValueError(f"{name} version {version} holds no model folder.")
        sizes = weight_sizes(folders[0])
        if sizes != reference["sizes"]:
            raise ValueError(
                f"{name} version {version}'s weight files are not the ones registered: "
                f"{sizes} against {reference['sizes']}."
            )
        yield folders[0]


def logged_folders(downloaded: Path) -> list[Path]:
    """The model folders in a version ``downloaded`` from the registry: each logged as an
    artifact named after the folder it was logged from (``artifacts/<name>/config.json``)."""
    return [path.parent for path in sorted(downloaded.glob("artifacts/*/config.json"))]


def load_adapted(folder: Path | str) -> Any:
    """The model an adapter version's ``folder`` describes: its base downloaded from the
    registry and checked, loaded in fp32, with each LoRA adapter folded into it in the order
    they were trained; a soft prompt (always the last) stays a PEFT model around it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    with downloaded_base(base_reference(folder)) as base:
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    for adapter in sorted((folder / ADAPTERS_FOLDER).iterdir()):
        model = PeftModel.from_pretrained(model, str(adapter))
        if not model.peft_config["default"].is_prompt_learning:
            model = model.merge_and_unload()
    return model
