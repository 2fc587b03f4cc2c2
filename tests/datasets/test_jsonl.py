"""Tests for JSONLinesDataset: exact values, atomic saves and Kedro versioning."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from llm_pipeline.datasets import JSONLinesDataset


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def chats() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["0012", "0500"],
            "messages": [
                [{"role": "user", "content": "Où est ma tente ?"}],
                [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                ],
            ],
            "meta": [{"tags": ["returns", "tent"], "score": 0.5}, {"tags": [], "score": None}],
            "context": [None, "Tents ship in 3 days."],
        }
    )


def test_round_trip_keeps_nested_values_and_none(tmp_path, chats):
    dataset = JSONLinesDataset(str(tmp_path / "chats.jsonl"))
    dataset.save(chats)

    pd.testing.assert_frame_equal(dataset.load(), chats)


def test_ids_with_leading_zeros_stay_strings(tmp_path, chats):
    path = tmp_path / "chats.jsonl"
    JSONLinesDataset(str(path)).save(chats)

    loaded = JSONLinesDataset(str(path)).load()

    assert loaded["id"].tolist() == ["0012", "0500"]
    assert [row["id"] for row in lines(path)] == ["0012", "0500"]


def test_non_ascii_text_is_written_as_is(tmp_path, chats):
    path = tmp_path / "chats.jsonl"
    JSONLinesDataset(str(path)).save(chats)

    assert "Où est ma tente ?" in path.read_text(encoding="utf-8")


def test_nan_is_written_as_null(tmp_path):
    path = tmp_path / "scores.jsonl"
    JSONLinesDataset(str(path)).save(pd.DataFrame({"id": ["a", "b"], "score": [1.5, np.nan]}))

    assert lines(path) == [{"id": "a", "score": 1.5}, {"id": "b", "score": None}]
    assert "NaN" not in path.read_text(encoding="utf-8")


def test_numpy_integers_are_written_as_plain_numbers(tmp_path):
    path = tmp_path / "counts.jsonl"
    JSONLinesDataset(str(path)).save(pd.DataFrame({"count": np.array([3, 4], dtype=np.int64)}))

    assert lines(path) == [{"count": 3}, {"count": 4}]


def test_numpy_array_cells_are_written_as_lists(tmp_path):
    path = tmp_path / "arrays.jsonl"
    frame = pd.DataFrame({"id": ["a", "b"], "tokens": [np.array([1, 2, 3]), np.array([4])]})
    JSONLinesDataset(str(path)).save(frame)

    assert lines(path) == [{"id": "a", "tokens": [1, 2, 3]}, {"id": "b", "tokens": [4]}]


def test_nan_inside_a_list_is_written_as_strict_json(tmp_path):
    path = tmp_path / "losses.jsonl"
    JSONLinesDataset(str(path)).save(pd.DataFrame({"losses": [[2.5, np.nan]]}))

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    rows = [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]
    assert rows == [{"losses": [2.5, None]}]


def test_empty_frame_saves_an_empty_file_and_loads_with_no_rows(tmp_path):
    path = tmp_path / "quarantine.jsonl"
    dataset = JSONLinesDataset(str(path))
    dataset.save(pd.DataFrame(columns=["source", "line", "rule"]))

    assert path.read_text(encoding="utf-8") == ""
    loaded = dataset.load()
    assert isinstance(loaded, pd.DataFrame)
    assert len(loaded) == 0


def test_blank_lines_are_skipped_on_load(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "1"}\n\n   \n{"id": "2"}\n', encoding="utf-8")

    assert JSONLinesDataset(str(path)).load()["id"].tolist() == ["1", "2"]


def test_save_creates_missing_parent_folders(tmp_path, chats):
    path = tmp_path / "03_primary" / "nested" / "chats.jsonl"
    JSONLinesDataset(str(path)).save(chats)

    assert len(lines(path)) == 2


def test_save_leaves_no_temporary_file_beside_the_target(tmp_path, chats):
    dataset = JSONLinesDataset(str(tmp_path / "chats.jsonl"))
    dataset.save(chats)
    dataset.save(chats.head(1))

    assert [p.name for p in tmp_path.iterdir()] == ["chats.jsonl"]


def test_failed_save_keeps_the_previous_file_intact(tmp_path, chats):
    path = tmp_path / "chats.jsonl"
    dataset = JSONLinesDataset(str(path))
    dataset.save(chats)
    before = path.read_bytes()
    broken = pd.DataFrame({"id": ["1", "2"], "payload": ["fine", object()]})

    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save(broken)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chats.jsonl"]


def test_exists_reflects_the_file(tmp_path, chats):
    dataset = JSONLinesDataset(str(tmp_path / "chats.jsonl"))
    assert not dataset.exists()

    dataset.save(chats)

    assert dataset.exists()


def test_versioned_save_then_load_gives_the_latest_version(tmp_path, chats):
    path = tmp_path / "chats.jsonl"
    dataset = JSONLinesDataset(str(path), version=Version(None, None))
    dataset.save(chats)
    # Versions are millisecond timestamps; two saves in the same millisecond would collide.
    time.sleep(0.01)
    dataset.save(chats.head(1))

    versions = sorted(p.name for p in path.iterdir())
    assert len(versions) == 2
    assert all((path / v / "chats.jsonl").is_file() for v in versions)
    assert dataset.load()["id"].tolist() == ["0012"]
    fresh = JSONLinesDataset(str(path), version=Version(None, None))
    assert fresh.load()["id"].tolist() == ["0012"]
    pinned = JSONLinesDataset(str(path), version=Version(versions[0], None))
    assert pinned.load()["id"].tolist() == ["0012", "0500"]


def test_versioned_load_without_any_version_fails(tmp_path):
    dataset = JSONLinesDataset(str(tmp_path / "chats.jsonl"), version=Version(None, None))

    assert not dataset.exists()
    with pytest.raises(DatasetError, match="Did not find any versions"):
        dataset.load()
