"""Where a run came from, read at register time: the git commit and the DVC hashes of its data.

A load-only catalog entry, so the register node stays a pure function of what it is given.
DVC's own records are read as they are (``dvc.lock`` after ``dvc repro``, ``<folder>.dvc``
after ``dvc add``); the files the models were trained and validated on are also hashed now,
with MD5 over their bytes as DVC 3 hashes a file, so a version can be traced to exact data
even when the run was a plain ``kedro run`` that DVC did not record.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kedro.io import AbstractDataset, DatasetError


class LineageDataset(AbstractDataset[None, dict[str, Any]]):
    """``{"git_commit", "git_dirty", "dvc": {path: md5}, "data_md5": {path: md5}}``.

    ``hashed`` are glob patterns of files, each hashed alone; ``trees`` are folders hashed as a
    whole (MD5 over each file's path and MD5, in path order; not DVC's own
    ``.dir`` hash, which ``dvc.lock`` holds once DVC has run the stage).
    """

    def __init__(
        self,
        hashed: list[str],
        trees: list[str] | None = None,
        dvc_files: list[str] | None = None,
        project: str = ".",
        metadata: dict[str, Any] | None = None,
    ):
        self._hashed = hashed
        self._trees = trees or []
        self._dvc_files = dvc_files or ["dvc.lock"]
        self._project = Path(project)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        commit, dirty = _git_state(self._project)
        dvc: dict[str, str] = {}
        for name in self._dvc_files:
            path = self._project / name
            if path.exists():
                dvc.update(_dvc_hashes(yaml.safe_load(path.read_text(encoding="utf-8")) or {}))
        data = {}
        for name in self._hashed:
            for path in sorted((self._project).glob(name)):
                if path.is_file():
                    data[path.relative_to(self._project).as_posix()] = file_md5(path)
        for name in self._trees:
            folder = self._project / name
            if folder.is_dir():
                data[folder.relative_to(self._project).as_posix()] = tree_md5(folder)
        return {"git_commit": commit, "git_dirty": dirty, "dvc": dvc, "data_md5": data}

    def save(self, data: dict[str, Any]) -> None:
        raise DatasetError("Lineage is read from git and DVC, never written.")

    def _describe(self) -> dict[str, Any]:
        return {"hashed": self._hashed, "trees": self._trees, "dvc_files": self._dvc_files}


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_md5(folder: Path) -> str:
    """One MD5 for a folder: over each file's relative path and MD5, in path order. Files are
    listed as ingest lists them (``hygiene/raw_files.py``): a file ingest refuses to open (a
    link out of the folder, a FIFO, ...) counts by its rule, and is not opened here either."""
    from llm_pipeline.hygiene.raw_files import RawFileRefused, list_raw_files

    digest = hashlib.md5(usedforsecurity=False)
    for source, load in list_raw_files(folder, None).items():
        try:
            content = hashlib.md5(load(), usedforsecurity=False).hexdigest()
        except RawFileRefused as refused:
            content = f"refused:{refused.rule}"
        name = Path(source).relative_to(folder).as_posix()
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def _git_state(project: Path) -> tuple[str, bool | None]:
    """The checked-out commit and whether tracked files differ from it (unknown outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)", None
    return commit, bool(changed)


def _dvc_hashes(record: dict[str, Any]) -> dict[str, str]:
    """path -> md5 of every dep and out in a ``dvc.lock`` or ``.dvc`` file."""
    entries = list(record.get("outs", [])) + list(record.get("deps", []))
    for stage in (record.get("stages") or {}).values():
        entries += list(stage.get("deps", [])) + list(stage.get("outs", []))
    return {entry["path"]: entry["md5"] for entry in entries if "md5" in entry and "path" in entry}
