"""Tests for the deterministic sample data generator."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest
from support import PROJECT_ROOT

from llm_pipeline.cli import sample_data
from llm_pipeline.cli.sample_data import ALL_INTENTS, generate, main, normalise

JSONL_FILES = {
    "conversations": ("conversations/support_chats.jsonl", "conversations/email_tickets.jsonl"),
    "preferences": ("preferences/preference_pairs.jsonl",),
    "validation": ("validation/validation_set.jsonl",),
}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    generate(root, scale="small")
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", scale="small", seed=7)
    generate(tmp_path / "b", scale="small", seed=7)
    generate(tmp_path / "c", scale="small", seed=8)
    first, second, other = (snapshot(tmp_path / name) for name in "abc")

    assert first == second
    assert first.keys() == other.keys()
    changed = [name for name in first if first[name] != other[name]]
    assert "conversations/support_chats.jsonl" in changed
    assert "validation/validation_set.jsonl" in changed


def test_layout_and_returned_counts_match_files(tmp_path: Path) -> None:
    counts = generate(tmp_path, scale="small")

    documents = sorted(p for p in (tmp_path / "documents").iterdir() if p.is_file())
    assert counts["documents"] == len(documents)
    assert {p.suffix for p in documents} == {".md", ".txt", ".jsonl"}
    assert [p.name for p in documents if p.suffix == ".jsonl"] == ["kb_faq.jsonl"]
    for kind, names in JSONL_FILES.items():
        assert counts[kind] == sum(len(read_jsonl(tmp_path / name)) for name in names)
    assert set(counts) == {"documents", "conversations", "preferences", "validation"}


def test_files_are_utf8_with_unix_newlines(small_root: Path) -> None:
    for path in small_root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"\r\n" not in data, path
            assert data.decode("utf-8").endswith("\n"), path


def test_knowledge_base_documents(small_root: Path) -> None:
    folder = small_root / "documents"
    for path in folder.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# "), path
        assert "\n## " in text, path
    faq = read_jsonl(folder / "kb_faq.jsonl")
    assert len(faq) == len(ALL_INTENTS)
    assert all(row["text"].strip() and row["id"] and row["title"] for row in faq)
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert 100_000 <= total <= 250_000


def test_chat_conversations_schema(small_root: Path) -> None:
    rows = read_jsonl(small_root / "conversations/support_chats.jsonl")
    assert [row["id"] for row in rows] == [f"conv-{i:05d}" for i in range(1, len(rows) + 1)]
    turns = Counter()
    for row in rows:
        messages = row["messages"]
        if messages[0]["role"] == "system":
            assert messages[0]["content"].strip()
            messages = messages[1:]
        roles = [m["role"] for m in messages]
        assert roles == ["user", "assistant"] * (len(roles) // 2), row["id"]
        assert all(m["content"].strip() for m in messages)
        turns[len(roles) // 2] += 1
    assert turns[1] > turns[2] > 0


def test_email_tickets_schema(small_root: Path) -> None:
    rows = read_jsonl(small_root / "conversations/email_tickets.jsonl")
    assert rows
    for row in rows:
        assert list(row) == ["id", "prompt", "response"]
        assert row["prompt"].startswith("Subject: ")
        assert row["response"].strip()


def test_preference_pairs_schema(small_root: Path) -> None:
    rows = read_jsonl(small_root / "preferences/preference_pairs.jsonl")
    assert rows
    for row in rows:
        assert list(row) == ["id", "prompt", "chosen", "rejected"]
        assert row["prompt"].strip() and row["chosen"].strip() and row["rejected"].strip()
        assert row["chosen"] != row["rejected"]


def test_validation_schema(small_root: Path) -> None:
    rows = read_jsonl(small_root / "validation/validation_set.jsonl")
    assert rows
    for row in rows:
        assert list(row) == ["id", "prompt", "reference", "context"]
        assert all(row[key].strip() for key in ("prompt", "reference", "context"))


def training_prompts(root: Path) -> set[str]:
    chats = read_jsonl(root / "conversations/support_chats.jsonl")
    prompts = {
        normalise(m["content"]) for row in chats for m in row["messages"] if m["role"] == "user"
    }
    for name in ("conversations/email_tickets.jsonl", "preferences/preference_pairs.jsonl"):
        prompts |= {normalise(row["prompt"]) for row in read_jsonl(root / name)}
    return prompts


def test_validation_prompts_never_appear_in_training(tmp_path: Path) -> None:
    generate(tmp_path, scale="default")
    seen = training_prompts(tmp_path)
    validation = read_jsonl(tmp_path / "validation/validation_set.jsonl")
    assert seen and validation
    assert not [row["prompt"] for row in validation if normalise(row["prompt"]) in seen]
    # Stronger: validation questions come from phrasings that training never uses.
    train_templates = {normalise(t) for _, intent in ALL_INTENTS for t in intent.train}
    held_out = {normalise(t) for _, intent in ALL_INTENTS for t in intent.held_out}
    assert not train_templates & held_out


def test_few_duplicate_conversations(tmp_path: Path) -> None:
    generate(tmp_path, scale="default")
    rows = read_jsonl(tmp_path / "conversations/support_chats.jsonl")
    copies = Counter(json.dumps(row["messages"]) for row in rows)
    assert sum(n - 1 for n in copies.values()) < 0.02 * len(rows)


def test_small_is_smaller_than_default_and_sizes_are_in_range(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", scale="small")
    default = generate(tmp_path / "default", scale="default")

    for kind in ("conversations", "preferences", "validation"):
        assert small[kind] < default[kind]
    assert 600 <= default["conversations"] <= 900
    assert 300 <= default["preferences"] <= 400
    assert 80 <= default["validation"] <= 120
    assert 25 <= default["documents"] == small["documents"]


def test_refuses_non_empty_root_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("user data", encoding="utf-8")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path))):
        generate(tmp_path, scale="small")
    assert [p.name for p in tmp_path.rglob("*")] == ["mine.txt"]

    generate(tmp_path, scale="small", overwrite=True)
    assert (tmp_path / "validation/validation_set.jsonl").exists()
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "user data"


def test_gitkeep_alone_counts_as_empty(tmp_path: Path) -> None:
    (tmp_path / ".gitkeep").touch()
    assert main([str(tmp_path), "--scale", "small", "--if-empty"]) == 0
    assert (tmp_path / "conversations/support_chats.jsonl").exists()


def test_main_if_empty_keeps_user_data(tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents/notes.md").write_text("# Mine\n", encoding="utf-8")
    before = snapshot(tmp_path)

    assert main([str(tmp_path), "--scale", "small", "--if-empty"]) == 0
    assert snapshot(tmp_path) == before
    assert main([str(tmp_path), "--scale", "small"]) == 1
    assert snapshot(tmp_path) == before


def test_unknown_scale_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="huge"):
        generate(tmp_path, scale="huge")


def test_module_uses_no_print() -> None:
    source = Path(sample_data.__file__).read_text(encoding="utf-8")
    assert "print(" not in source


def test_the_facts_ship_as_package_data() -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["llm_pipeline"]
    package = Path(sample_data.__file__).parents[1]
    relative = sample_data.FACTS_FILE.relative_to(package).as_posix()
    assert any(fnmatch(relative, pattern) for pattern in patterns)
    assert sample_data.load_facts()["shop"] == sample_data.SHOP
