"""The ingest pipeline over an in-memory catalog, on the sample data with broken files added."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
from support import failing_after, release_watch, run_ingest, watch_for_readers

from llm_pipeline.hygiene import near_duplicates
from llm_pipeline.pipelines.ingest import nodes
from llm_pipeline.pipelines.ingest.pipeline import SPLITS

CONF = Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_ingest.yml"
KINDS = ("documents", "conversations", "preferences", "validation")
HTML_PAGES = Path(__file__).resolve().parents[2] / "hygiene" / "html_pages"


def test_ingest_accounts_for_every_row_and_removes_planted_problems(small_raw_data, tmp_path):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    first_chat = (raw / "conversations" / "support_chats.jsonl").read_text().splitlines()[0]
    validation_prompt = json.loads(
        (raw / "validation" / "validation_set.jsonl").read_text().splitlines()[0]
    )["prompt"]
    planted = [
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        "not json",
        first_chat,
        json.dumps(
            {
                "prompt": f"{validation_prompt} My email is kim@example.org",
                "response": "Call me on +44 20 7946 0958.",
            }
        ),
    ]
    (raw / "conversations" / "zz_planted.jsonl").write_text("\n".join(planted) + "\n")
    (raw / "documents" / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    outputs = run_ingest(raw, tmp_path)
    accounting = outputs["ingest_accounting"]
    assert accounting["balanced"].all()
    assert set(accounting["source"]) >= {str(raw / "conversations" / "zz_planted.jsonl")}
    quarantine = outputs["quarantine"]
    planted_rules = quarantine[quarantine["source"].str.endswith("zz_planted.jsonl")]
    assert dict(zip(planted_rules["line"], planted_rules["rule"], strict=True)) == {
        1: "schema",
        2: "malformed_json",
        3: "duplicate",
        4: "validation_leak",
    }
    assert quarantine[quarantine["source"].str.endswith("photo.txt")]["rule"].tolist() == [
        "binary_file"
    ]
    written = json.dumps(
        [
            outputs[name].to_dict(orient="records")
            for name in outputs
            if name.startswith("ingested_")
        ],
        default=str,
    )
    assert "kim@example.org" not in written
    report = outputs["data_report"]
    assert report["every_row_accounted_for"] is True
    assert report["rows_in"] == report["rows_out"] + report["rows_quarantined"]


def test_the_data_report_counts_html_pages_read_as_main_content_and_whole(small_raw_data, tmp_path):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    pages = raw / "documents" / "pages"
    pages.mkdir()
    shutil.copy(HTML_PAGES / "sphinx_page.html", pages / "tidetable.html")
    shutil.copy(HTML_PAGES / "mkdocs_material_page.html", pages / "returns.html")
    (pages / "hours.htm").write_text("<h2>Opening hours</h2><p>Mon-Fri 9:00-17:30, Sat 10-14</p>")

    outputs = run_ingest(raw, tmp_path)

    assert outputs["data_report"]["html_pages_read_as"] == {"main_content": 2, "whole_page": 1}
    accounting = outputs["ingest_accounting"]
    read_as = dict(zip(accounting["source"], accounting["html_text_from"], strict=True))
    assert {name: read_as[str(pages / name)] for name in ("tidetable.html", "hours.htm")} == {
        "tidetable.html": "main_content",
        "hours.htm": "whole_page",
    }
    assert read_as[str(raw / "conversations" / "support_chats.jsonl")] is None


def test_two_workers_give_the_same_outputs_and_quarantine_as_one(
    small_raw_data, tmp_path, monkeypatch
):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    bad = ["not json", json.dumps({"text": ""}), json.dumps({"text": "too short"})]
    for index in range(3):
        mail = json.dumps({"text": f"Please mail ann{index}@example.org about order {index}."})
        lines = [*bad[index:], mail]
        (raw / "documents" / f"zz_bad_{index}.jsonl").write_text("\n".join(lines) + "\n")
    # Tiny chunks, so that even the sample data makes many tasks for the workers to share.
    monkeypatch.setattr(nodes, "_CHUNK_CHARS", 2_000)
    monkeypatch.setattr(near_duplicates, "_BATCH_CHARS", 20_000)

    one = run_ingest(raw, tmp_path / "one", workers=1)
    two = run_ingest(raw, tmp_path / "two", workers=2)
    assert set(one) == set(two)
    for name, output in one.items():
        if isinstance(output, pd.DataFrame):
            pd.testing.assert_frame_equal(two[name], output, obj=name)
        elif name != "data_report_plot":
            assert json.dumps(two[name], default=str) == json.dumps(output, default=str), name
    quarantine = one["quarantine"]
    bad_rows = quarantine[quarantine["source"].str.contains("zz_bad_")]
    found = zip(bad_rows["source"].str[-7:], bad_rows["line"], bad_rows["rule"], strict=True)
    assert sorted(found) == [
        ("0.jsonl", 1, "malformed_json"),
        ("0.jsonl", 2, "schema"),
        ("0.jsonl", 3, "too_short"),
        ("1.jsonl", 1, "schema"),
        ("1.jsonl", 2, "too_short"),
        ("2.jsonl", 1, "too_short"),
    ]
    assert one["data_report"]["pii_found"]["documents"]["email"] >= 3


def test_nothing_outside_the_raw_folder_is_read_and_every_refusal_is_reported(
    small_raw_data, tmp_path
):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("Outside marker 7f3a: never to be trained on.")
    (outside / "chats.jsonl").write_text(
        json.dumps({"prompt": "Outside marker 9c1e?", "response": "Never trained on."}) + "\n"
    )
    documents = raw / "documents"
    (documents / "x.txt").symlink_to("/etc/passwd")
    (documents / "system").symlink_to("/etc")
    (documents / "deep" / "er").mkdir(parents=True)
    (documents / "deep" / "er" / "notes.txt").symlink_to(outside / "notes.txt")
    os.link(outside / "notes.txt", documents / "hard.txt")
    os.mkfifo(documents / "pipe.txt")
    (raw / "conversations" / "linked").symlink_to(outside)
    fifo_opened = watch_for_readers(documents / "pipe.txt")

    try:
        with failing_after(120):
            outputs = run_ingest(raw, tmp_path / "written", workers=2)
        assert not fifo_opened.is_set(), "the FIFO was opened"
    finally:
        release_watch(documents / "pipe.txt", fifo_opened)

    assert {f"ingested_{name}" for name in SPLITS} <= set(outputs)
    written = json.dumps(outputs["data_report"]) + "".join(
        path.read_text() for path in (tmp_path / "written").iterdir()
    )
    assert len(outputs["ingested_documents_train"]) > 10  # the sample data came through
    for line in filter(None, Path("/etc/passwd").read_text().splitlines()):
        assert line not in written
    assert "7f3a" not in written and "9c1e" not in written
    quarantine = outputs["quarantine"]
    refused = quarantine[quarantine["line"] == 0].set_index("source")
    expected = {
        documents / "x.txt": ("outside_data_folder", "/etc/passwd"),
        documents / "system": ("outside_data_folder", "/etc"),
        documents / "deep" / "er" / "notes.txt": ("outside_data_folder", str(outside)),
        documents / "hard.txt": ("hard_link", "2 names for one file"),
        documents / "pipe.txt": ("special_file", "a named pipe (FIFO)"),
        raw / "conversations" / "linked": ("outside_data_folder", str(outside)),
    }
    for path, (rule, named) in expected.items():
        assert refused.loc[path.as_posix(), "rule"] == rule, path
        assert named in refused.loc[path.as_posix(), "detail"], path
    assert outputs["ingest_accounting"]["balanced"].all()
    report = outputs["data_report"]
    assert report["files_not_opened"]["by_rule"] == {
        "outside_data_folder": 4,
        "hard_link": 1,
        "special_file": 1,
    }
    assert {f["source"] for f in report["files_not_opened"]["files"]} == {
        path.as_posix() for path in expected
    }
    assert report["quarantined_by_rule"]["outside_data_folder"] == 4
