"""What a folder of model files holds, cheaply enough for 70B checkpoints: sizes always, and a
digest per file that reads a few megabytes of a large file, or all of it when asked.

Checkpoint markers, the model a machine hands to the others and job fingerprints describe the
files of a folder. Reading every byte of a 70B checkpoint (hundreds of GB with its optimizer
state) takes tens of minutes while the other ranks wait at a barrier, past the collectives'
timeout. So a file over ``SMALL_FILE`` bytes is described by its size and a *sampled* SHA-256:
over the file's size and ``SAMPLES`` blocks of ``BLOCK`` bytes at evenly spaced offsets, and for
a safetensors file also over its header (every tensor's name, dtype, shape and offsets) and the
first, middle and last block of every tensor. That catches a truncated or torn write, a file
from another save, and any tensor that training changed (it changes nearly every value of a
tensor it trains, LoRA's merged ones included); it does not catch a single flipped byte between
the samples, which is what ``full`` (every byte, ``launch.digest: full``) is for. Small files
(configs, tokenizers, the trainer's state, RNG states) are always hashed whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

DigestMode = Literal["sampled", "full"]
DIGEST_MODES: tuple[str, ...] = ("sampled", "full")
# Set by the launcher from launch.digest: how the workers describe what they save.
DIGEST_VARIABLE = "LLM_PIPELINE_DIGEST"
SMALL_FILE = 16 * 1024 * 1024
BLOCK = 4096
SAMPLES = 256


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex: small files, GGUF cache keys, ``full`` digests."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def digest_mode() -> DigestMode:
    """This worker's digest mode (the launcher's ``launch.digest``); ``sampled`` by default."""
    mode = os.environ.get(DIGEST_VARIABLE) or "sampled"
    if mode not in DIGEST_MODES:
        raise ValueError(f"{DIGEST_VARIABLE}={mode!r}: expected one of {list(DIGEST_MODES)}")
    return mode  # type: ignore[return-value]


def file_facts(path: Path, mode: DigestMode) -> dict[str, Any]:
    """``bytes`` and ``sha256`` (every byte), or for a large file in ``sampled`` mode
    ``sampled_sha256`` (see the module's docstring)."""
    size = path.stat().st_size
    if mode == "full" or size <= SMALL_FILE:
        return {"bytes": size, "sha256": file_sha256(path)}
    return {"bytes": size, "sampled_sha256": sampled_sha256(path)}


def facts_problem(path: Path, facts: dict[str, Any]) -> str | None:
    """What is wrong with ``path`` against the ``facts`` recorded for it, or None."""
    size = path.stat().st_size
    if size != facts.get("bytes"):
        return f"has {size} bytes, {facts.get('bytes')} were written (truncated)"
    if "sha256" in facts and file_sha256(path) != facts["sha256"]:
        return "does not match its recorded SHA-256 (corrupt)"
    if "sampled_sha256" in facts and sampled_sha256(path) != facts["sampled_sha256"]:
        return "does not match its recorded sampled SHA-256 (corrupt)"
    return None


def sampled_sha256(path: Path) -> str:
    """SHA-256 over the size, evenly spaced blocks and, for safetensors, the header and three
    blocks of every tensor: a few megabytes read whatever the file's size."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    offsets = {size * i // SAMPLES for i in range(SAMPLES)}
    with path.open("rb") as handle:
        if path.suffix == ".safetensors":
            header, tensors = _safetensors_layout(handle, size)
            digest.update(header)
            for start, end in tensors:
                offsets.update((start, (start + end) // 2, max(start, end - BLOCK)))
        for offset in sorted(offset for offset in offsets if offset < size):
            handle.seek(offset)
            digest.update(offset.to_bytes(8, "little"))
            digest.update(handle.read(BLOCK))
    return digest.hexdigest()


def _safetensors_layout(handle: Any, size: int) -> tuple[bytes, list[tuple[int, int]]]:
    """The header's bytes and each tensor's (start, end) in the file; no tensors when the file
    is not valid safetensors (it is then sampled as any file)."""
    prefix = handle.read(8)
    if len(prefix) < 8:
        return prefix, []
    (length,) = struct.unpack("<Q", prefix)
    if length > min(size - 8, 100 * 1024 * 1024):
        return prefix, []
    header = handle.read(length)
    try:
        entries = json.loads(header)
    except ValueError:
        return prefix + header, []
    tensors = [
        (8 + length + entry["data_offsets"][0], 8 + length + entry["data_offsets"][1])
        for name, entry in entries.items()
        if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    return prefix + header, tensors


def folder_files(folder: Path, leave_out: str | None = None) -> list[str]:
    """The relative paths of every file below ``folder`` (but files named ``leave_out``)."""
    return [
        path.relative_to(folder).as_posix()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != leave_out
    ]


def folder_manifest(
    folder: Path,
    leave_out: str | None = None,
    mode: DigestMode | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``file_facts`` of every file below ``folder`` (or of ``names``), by relative path."""
    mode = mode or digest_mode()
    chosen = folder_files(folder, leave_out) if names is None else names
    return {name: file_facts(folder / name, mode) for name in chosen}


def manifest_problem(
    folder: Path, expected: dict[str, dict[str, Any]], leave_out: str
) -> str | None:
    """What differs between ``folder`` and the manifest ``expected``, or None."""
    present = set(folder_files(folder, leave_out))
    missing, unexpected = sorted(set(expected) - present), sorted(present - set(expected))
    if missing or unexpected:
        return f"files missing {missing}, unexpected {unexpected}"
    for name, facts in expected.items():
        problem = facts_problem(folder / name, facts)
        if problem is not None:
            return f"{name} {problem}"
    return None


def write_manifest(
    folder: Path,
    marker: Path,
    leave_out: str | None = None,
    files: dict[str, dict[str, Any]] | None = None,
    **facts: Any,
) -> None:
    """Flush every file of ``folder`` to disk, then write ``marker`` (``files``, by default
    ``folder_manifest``'s, beside ``facts``) and rename it into place: a reader that finds the
    marker finds every byte it describes."""
    files = folder_manifest(folder, leave_out) if files is None else files
    for name in files:
        fsync_file(folder / name)
    staging = marker.with_name(f".{marker.name}.tmp")
    staging.write_text(json.dumps({**facts, "files": files}, indent=1), encoding="utf-8")
    fsync_file(staging)
    os.replace(staging, marker)


def fsync_file(path: Path) -> None:
    """Flush ``path`` to disk: a marker written after it must never describe lost bytes."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
