"""LineageDataset against a real git repository and DVC's own records."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
import yaml
from kedro.io import DatasetError

from llm_pipeline.datasets import LineageDataset


def git(*args: str, cwd) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data/03_primary").mkdir(parents=True)
    (tmp_path / "data/01_raw/documents").mkdir(parents=True)
    (tmp_path / "data/01_raw/documents/a.txt").write_text("first")
    (tmp_path / "data/03_primary/documents_train.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "data/03_primary/validation_set.jsonl").write_text('{"prompt": "b"}\n')
    (tmp_path / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "ingest": {
                        "cmd": "kedro run --pipeline ingest",
                        "deps": [{"path": "data/01_raw", "md5": "aaa.dir", "size": 10}],
                        "outs": [{"path": "data/02_intermediate", "md5": "bbb.dir"}],
                    }
                },
            }
        )
    )
    (tmp_path / "params.yml").write_text("a: 1\n")
    git("init", "-q", cwd=tmp_path)
    git("add", "-A", cwd=tmp_path)
    git("commit", "-q", "-m", "data", cwd=tmp_path)
    return tmp_path


def dataset(project) -> LineageDataset:
    return LineageDataset(
        hashed=["data/03_primary/*.jsonl"], trees=["data/01_raw"], project=str(project)
    )


def test_lineage_names_the_commit_dvc_records_and_the_md5_of_each_data_file(project):
    lineage = dataset(project).load()

    assert lineage["git_commit"] == git("rev-parse", "HEAD", cwd=project)
    assert lineage["git_dirty"] is False
    assert lineage["dvc"] == {"data/01_raw": "aaa.dir", "data/02_intermediate": "bbb.dir"}
    expected = hashlib.md5(b'{"text": "a"}\n').hexdigest()
    assert lineage["data_md5"]["data/03_primary/documents_train.jsonl"] == expected
    assert set(lineage["data_md5"]) == {
        "data/01_raw",
        "data/03_primary/documents_train.jsonl",
        "data/03_primary/validation_set.jsonl",
    }


def test_a_changed_tracked_file_marks_the_checkout_dirty(project):
    (project / "params.yml").write_text("a: 2\n")

    assert dataset(project).load()["git_dirty"] is True


def test_changed_data_changes_its_hash(project):
    before = dataset(project).load()["data_md5"]
    (project / "data/03_primary/documents_train.jsonl").write_text('{"text": "b"}\n')

    after = dataset(project).load()["data_md5"]

    key = "data/03_primary/documents_train.jsonl"
    assert before[key] != after[key]


def test_outside_git_the_commit_is_unknown(tmp_path):
    lineage = LineageDataset(hashed=[], project=str(tmp_path)).load()

    assert lineage["git_commit"].startswith("unknown")
    assert lineage["git_dirty"] is None
    assert lineage["dvc"] == {}


def test_lineage_cannot_be_saved(project):
    with pytest.raises(DatasetError, match="never written"):
        dataset(project).save({})


def test_the_raw_folder_hash_changes_with_any_file_in_it(project):
    before = dataset(project).load()["data_md5"]["data/01_raw"]
    (project / "data/01_raw/documents/b.txt").write_text("second")
    added = dataset(project).load()["data_md5"]["data/01_raw"]
    (project / "data/01_raw/documents/b.txt").write_text("changed")
    changed = dataset(project).load()["data_md5"]["data/01_raw"]

    assert len({before, added, changed}) == 3


def test_the_raw_folder_hash_never_reads_what_a_link_out_of_it_points_to(tmp_path):
    from llm_pipeline.datasets.lineage import tree_md5

    raw, outside = tmp_path / "01_raw", tmp_path / "outside.txt"
    (raw / "documents").mkdir(parents=True)
    (raw / "documents" / "faq.md").write_text("Returns within 30 days.\n")
    outside.write_text("root:x:0:0\n")
    (raw / "documents" / "x.txt").symlink_to(outside)
    before = tree_md5(raw)

    outside.write_text("something else entirely\n")
    assert tree_md5(raw) == before  # the target was never read
    (raw / "documents" / "faq.md").write_text("Returns within 60 days.\n")
    assert tree_md5(raw) != before
