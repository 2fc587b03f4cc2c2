"""JSON Lines tables: one record a line, nested fields kept as they are, saved atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractVersionedDataset
from kedro.io.core import Version

from llm_pipeline.datasets._atomic import write_file_atomically


class JSONLinesDataset(AbstractVersionedDataset[pd.DataFrame, pd.DataFrame]):
    """A ``DataFrame`` stored as JSON Lines.

    pandas' own JSON reader infers types (an id such as ``"0012"`` becomes a number) and fails
    on an empty file; this reads every value as JSON wrote it and treats an empty file as a
    table with no rows. Missing values are written as ``null``.
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(PurePosixPath(filepath), version)
        self.metadata = metadata

    _kept: Any = None

    def load(self) -> pd.DataFrame:
        if self._kept is not None:
            # The ray engine's table, read back by the nodes of the run that wrote it from the
            # cluster it is on (``as_frame`` makes it a DataFrame for nodes that need one).
            return self._kept
        path = Path(self._get_load_path().as_posix())
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return pd.DataFrame.from_records(records)

    def save(self, data: pd.DataFrame) -> None:
        """Write ``data``; a table of the ray engine (``ClusterTable``) is written block by
        block, each block's lines made where the block is, and kept for ``load``."""
        path = Path(self._get_save_path().as_posix())
        on_cluster = not isinstance(data, pd.DataFrame)

        def write(tmp: Path) -> None:
            chunks = data.each_block(json_lines) if on_cluster else [json_lines(data)]
            with tmp.open("w", encoding="utf-8") as handle:
                for chunk in chunks:
                    handle.write(chunk)

        write_file_atomically(path, write)
        self._kept = data if on_cluster else None

    def _release(self) -> None:
        self._kept = None

    def _exists(self) -> bool:
        return Path(self._get_load_path().as_posix()).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath.as_posix(), "version": self._version}


def json_lines(frame: pd.DataFrame) -> str:
    """The rows of ``frame`` as JSON Lines, a line each."""
    lines = []
    for record in frame.to_dict(orient="records"):
        clean = {key: _json_value(value) for key, value in record.items()}
        lines.append(json.dumps(clean, ensure_ascii=False, allow_nan=False) + "\n")
    return "".join(lines)


def as_frame(table: Any) -> pd.DataFrame:
    """``table`` as a DataFrame: a table of the ray engine is brought into this process whole,
    as ``load`` reads the file it was written to (values as JSON gives them back)."""
    if isinstance(table, pd.DataFrame):
        return table
    return pd.DataFrame.from_records(
        [
            json.loads(line)
            for chunk in table.each_block(json_lines)
            for line in chunk.split("\n")
            if line.strip()
        ]
    )


def _json_value(value: Any) -> Any:
    """Turn missing values (at any depth), numpy arrays and scalars into what JSON can write."""
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars alike
        return _json_value(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
