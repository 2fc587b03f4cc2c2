"""Tests for RawFolderDataset: which files are read, under which key, that it is read-only, and
that nothing outside the folder (links out, hard links, FIFOs, devices) is ever opened."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
import yaml
from kedro.io import DatasetError
from support import failing_after, release_watch, run_command, tool, watch_for_readers

from llm_pipeline.datasets import RawFolderDataset
from llm_pipeline.hygiene.raw_files import RawFileRefused
from llm_pipeline.pipelines.ingest import nodes

CONF = Path(__file__).resolve().parents[2] / "conf" / "base" / "parameters_ingest.yml"


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


# --- What may be opened: only regular files whose real path is inside the folder --------------


def outcome(loader) -> tuple[str, str]:
    """("read", the bytes) or (the refusal's rule, its detail)."""
    try:
        return "read", loader().decode()
    except RawFileRefused as refused:
        return refused.rule, refused.detail


def outcomes(folder: Path) -> dict[str, tuple[str, str]]:
    loaded = RawFolderDataset(str(folder)).load()
    return {Path(key).relative_to(folder).as_posix(): outcome(f) for key, f in loaded.items()}


@pytest.fixture
def linked(tmp_path):
    """A raw folder with links out of it at several depths, and links that stay inside."""
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret")
    (outside / "private" / "key.txt").write_text("private key")
    root = tmp_path / "documents"
    (root / "kb" / "deep").mkdir(parents=True)
    (root / "kb" / "returns.txt").write_text("Returns within 30 days.")
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc")
    (root / "kb" / "deep" / "secret.txt").symlink_to("../../../outside/secret.txt")
    (root / "kb" / "private").symlink_to(outside / "private")
    (root / "kb" / "hop.txt").symlink_to("../hop2.txt")  # a chain that ends outside
    (root / "hop2.txt").symlink_to(outside / "secret.txt")
    (root / "same_returns.txt").symlink_to("kb/returns.txt")
    (root / "kb_again").symlink_to("kb/deep")
    (root / "kb" / "deep" / "notes.md").write_text("Notes that stay inside.")
    (root / "kb" / "deep" / "up").symlink_to("..")
    (root / "gone.txt").symlink_to("kb/removed.txt")
    return root


def test_links_out_of_the_folder_are_refused_naming_their_target(linked, tmp_path):
    found = outcomes(linked)

    outside = tmp_path / "outside"
    assert found["passwd.txt"][0] == "outside_data_folder"
    assert "/etc/passwd" in found["passwd.txt"][1]
    assert found["etc"][0] == "outside_data_folder"
    assert "a folder outside" in found["etc"][1]
    assert not any(key.startswith("etc/") for key in found)  # /etc was never listed
    assert found["kb/deep/secret.txt"] == (
        "outside_data_folder",
        f"a symbolic link to ../../../outside/secret.txt ({outside / 'secret.txt'}), "
        f"outside {linked}; not opened",
    )
    assert found["kb/private"][0] == "outside_data_folder"
    assert str(outside / "private") in found["kb/private"][1]
    assert found["kb/hop.txt"][0] == "outside_data_folder"
    assert str(outside / "secret.txt") in found["kb/hop.txt"][1]
    assert found["hop2.txt"][0] == "outside_data_folder"
    assert found["gone.txt"][0] == "broken_link"


def test_links_that_stay_inside_the_folder_are_read(linked):
    found = outcomes(linked)

    assert found["same_returns.txt"] == ("read", "Returns within 30 days.")
    assert found["kb_again/notes.md"] == ("read", "Notes that stay inside.")
    assert found["kb/deep/notes.md"] == ("read", "Notes that stay inside.")
    assert found["kb/deep/up"][0] == "link_loop"
    # Through kb_again, "up" leads to kb, not an ancestor on that path: walked once more.
    assert found["kb_again/up/returns.txt"] == ("read", "Returns within 30 days.")
    assert found["kb_again/up/deep/up"][0] == "link_loop"
    read = {key: text for key, (rule, text) in found.items() if rule == "read"}
    assert not any("secret" in text or "private" in text for text in read.values())


def test_a_file_swapped_for_a_link_after_listing_is_refused(tmp_path):
    root = tmp_path / "documents"
    root.mkdir()
    (root / "a.txt").write_text("listed as a file")
    (tmp_path / "secret.txt").write_text("outside secret")
    loader = RawFolderDataset(str(root)).load()[(root / "a.txt").as_posix()]

    (root / "a.txt").unlink()
    (root / "a.txt").symlink_to(tmp_path / "secret.txt")

    assert outcome(loader)[0] == "changed_after_listing"


def test_fifos_sockets_and_devices_are_refused_and_never_opened(tmp_path):
    root = tmp_path / "documents"
    root.mkdir()
    (root / "a.txt").write_text("a plain file")
    os.mkfifo(root / "pipe.txt")
    (root / "link_to_pipe.txt").symlink_to("pipe.txt")
    opened = watch_for_readers(root / "pipe.txt")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "socket.txt"))
    try:
        os.mknod(root / "null.txt", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        devices = ["null.txt"]
    except PermissionError:  # not root: no device file can be made
        devices = []
    try:
        with failing_after(60):
            found = outcomes(root)
        assert not opened.is_set(), "the FIFO was opened"
    finally:
        release_watch(root / "pipe.txt", opened)
        server.close()

    assert found["a.txt"] == ("read", "a plain file")
    assert found["pipe.txt"] == ("special_file", "a named pipe (FIFO), not a file; not opened")
    assert found["link_to_pipe.txt"][0] == "special_file"
    assert found["socket.txt"] == ("special_file", "a socket, not a file; not opened")
    for name in devices:
        assert found[name] == ("special_file", "a character device, not a file; not opened")


def test_a_hard_link_is_refused_unless_all_its_names_are_inside(tmp_path):
    root = tmp_path / "documents"
    (root / "kb").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("outside secret")
    os.link(tmp_path / "secret.txt", root / "secret.txt")
    (root / "kb" / "faq.md").write_text("FAQ with two names")
    os.link(root / "kb" / "faq.md", root / "faq_copy.md")

    found = outcomes(root)

    assert found["secret.txt"][0] == "hard_link"
    assert "2 names for one file, 1 of them in" in found["secret.txt"][1]
    assert found["kb/faq.md"] == ("read", "FAQ with two names")
    assert found["faq_copy.md"] == ("read", "FAQ with two names")


# --- DVC's cache: its links are the data, read as such ---------------------------------------


def dvc(project: Path, *args: str) -> None:
    result = run_command([tool("dvc"), *args], project)
    assert result.returncode == 0, result.stderr


def dvc_project(tmp_path: Path, cache_type: str, git: bool) -> Path:
    """A DVC project whose data/01_raw/documents was added with ``cache.type: cache_type``."""
    project = tmp_path / "project"
    documents = project / "data" / "01_raw" / "documents"
    (documents / "kb").mkdir(parents=True)
    (documents / "faq.md").write_text("Standard shipping takes three to five business days.")
    (documents / "kb" / "returns.txt").write_text("Returns are accepted within thirty days.")
    if git:
        assert run_command(["git", "init", "-q"], project).returncode == 0
        dvc(project, "init", "-q")
    else:
        dvc(project, "init", "--no-scm", "-q")
    dvc(project, "config", "core.analytics", "false")
    dvc(project, "config", "cache.type", cache_type)
    dvc(project, "add", "-q", "data/01_raw/documents")
    return documents


@pytest.mark.parametrize(("cache_type", "git"), [("symlink", False), ("hardlink", True)])
def test_files_dvc_links_from_its_cache_are_read_by_ingest(tmp_path, cache_type, git):
    documents = dvc_project(tmp_path, cache_type, git)
    faq = documents / "faq.md"
    cache = (tmp_path / "project" / ".dvc" / "cache").resolve()
    if cache_type == "symlink":
        assert faq.is_symlink() and faq.resolve().is_relative_to(cache)
    else:
        assert not faq.is_symlink() and faq.stat().st_nlink == 2
    (tmp_path / "secret.txt").write_text("outside secret, not DVC's")
    os.link(tmp_path / "secret.txt", documents / "secret.txt")
    (documents / "passwd.txt").symlink_to("/etc/passwd")
    params = yaml.safe_load(CONF.read_text())["ingest"]

    rows, quarantine, _ = nodes.read_documents(RawFolderDataset(str(documents)).load(), params)

    assert dict(zip(rows["source"], rows["text"], strict=True)) == {
        faq.as_posix(): "Standard shipping takes three to five business days.",
        (documents / "kb" / "returns.txt").as_posix(): "Returns are accepted within thirty days.",
    }
    refused = dict(zip(quarantine["source"], quarantine["rule"], strict=True))
    assert refused == {
        (documents / "passwd.txt").as_posix(): "outside_data_folder",
        (documents / "secret.txt").as_posix(): "hard_link",
    }
    passwd_detail = quarantine.set_index("source").loc[(documents / "passwd.txt").as_posix()]
    assert f"outside DVC's cache {cache}" in passwd_detail["detail"]
