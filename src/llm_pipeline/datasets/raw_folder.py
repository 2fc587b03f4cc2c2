"""A folder of raw input files, loaded lazily as bytes so ingest decides how to decode each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from llm_pipeline.hygiene import raw_files


class RawFolderDataset(AbstractDataset[None, dict[str, Callable[[], bytes]]]):
    """Files below ``path`` (with one of ``suffixes``, if given), as ``{file path: loader}``.

    Keys are the files' POSIX paths including ``path``, so a quarantine entry names the file
    as a user sees it.

    Unlike ``PartitionedDataset`` an empty or missing folder is a valid, empty input: the
    explicit validation set, for instance, is optional. Hidden files are ignored.

    Only regular files whose real path lies inside ``path`` (or in the project's DVC cache) are
    read: the loader of a link out of the folder, a hard link, a FIFO, a device or a socket
    raises ``RawFileRefused`` without opening it (``hygiene.raw_files``).
    """

    def __init__(
        self,
        path: str,
        suffixes: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._path = Path(path)
        self._suffixes = tuple(s.lower() for s in suffixes) if suffixes else None
        self.metadata = metadata

    def load(self) -> dict[str, Callable[[], bytes]]:
        if not self._path.exists():
            return {}
        return raw_files.list_raw_files(self._path, self._suffixes)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} holds raw input; the pipeline never writes to it.")

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path.as_posix(), "suffixes": self._suffixes}
