"""Tests for RawFolderDataset: which files are read, under which key, and that it is read-only."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from llm_pipeline.datasets import RawFolderDataset


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "documents"
    files = {
        "faq.md": b"# FAQ",
        "notes.TXT": b"upper-case suffix",
        "kb/returns.txt": b"Returns within 30 days.",
        "kb/deep/shipping.jsonl": b'{"text": "Ships in 3 days."}\n',
        "image.png": b"\x89PNG",
        "README": b"no suffix",
        ".hidden.txt": b"hidden file",
        ".cache/cached.txt": b"inside a hidden folder",
        "kb/.draft.md": b"hidden file in a sub-folder",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_only_visible_files_with_a_listed_suffix_are_read(raw):
    loaded = RawFolderDataset(str(raw), suffixes=[".txt", ".md", ".jsonl"]).load()

    assert sorted(loaded) == [
        (raw / name).as_posix()
        for name in ["faq.md", "kb/deep/shipping.jsonl", "kb/returns.txt", "notes.TXT"]
    ]


def test_suffixes_match_case_insensitively_both_ways(raw):
    loaded = RawFolderDataset(str(raw), suffixes=[".TXT"]).load()

    assert sorted(loaded) == [(raw / "kb/returns.txt").as_posix(), (raw / "notes.TXT").as_posix()]


def test_keys_are_posix_paths_under_the_folder(raw):
    loaded = RawFolderDataset(str(raw), suffixes=[".txt", ".md", ".jsonl"]).load()

    for key in loaded:
        assert "\\" not in key
        assert key.startswith(raw.as_posix() + "/")


def test_loaders_return_the_file_bytes_lazily(raw):
    loaded = RawFolderDataset(str(raw), suffixes=[".txt", ".jsonl"]).load()
    returns = (raw / "kb/returns.txt").as_posix()
    (raw / "kb/returns.txt").write_bytes(b"Changed after load.")

    assert loaded[returns]() == b"Changed after load."
    assert loaded[(raw / "kb/deep/shipping.jsonl").as_posix()]() == (
        b'{"text": "Ships in 3 days."}\n'
    )


def test_missing_folder_is_an_empty_input(tmp_path):
    dataset = RawFolderDataset(str(tmp_path / "validation"), suffixes=[".jsonl"])

    assert dataset.load() == {}
    assert not dataset.exists()


def test_empty_folder_is_an_empty_input(tmp_path):
    (tmp_path / "validation").mkdir()

    assert RawFolderDataset(str(tmp_path / "validation"), suffixes=[".jsonl"]).load() == {}


def test_save_is_refused_and_writes_nothing(raw):
    before = sorted(p for p in raw.rglob("*"))
    dataset = RawFolderDataset(str(raw), suffixes=[".txt"])

    with pytest.raises(DatasetError, match="holds raw input"):
        dataset.save({"new.txt": b"written by a node"})

    assert sorted(p for p in raw.rglob("*")) == before
