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

    def load(self) -> pd.DataFrame:
        path = Path(self._get_load_path().as_posix())
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return pd.DataFrame.from_records(records)

    def save(self, data: pd.DataFrame) -> None:
        path = Path(self._get_save_path().as_posix())
        records = data.to_dict(orient="records")

        def write(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as handle:
                for record in records:
                    clean = {key: _json_value(value) for key, value in record.items()}
                    handle.write(json.dumps(clean, ensure_ascii=False, allow_nan=False) + "\n")

        write_file_atomically(path, write)

    def _exists(self) -> bool:
        return Path(self._get_load_path().as_posix()).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath.as_posix(), "version": self._version}


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
