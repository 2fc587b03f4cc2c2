"""Ingest nodes on small fixtures: reading, quarantine, cleaning, PII, duplicates, splits, leaks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llm_pipeline.pipelines.ingest import nodes

CONF = Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_ingest.yml"


@pytest.fixture
def params() -> dict:
    loaded = yaml.safe_load(CONF.read_text())["ingest"]
    loaded["document_validation_fraction"] = 0.5
    loaded["conversation_validation_fraction"] = 0.3
    return loaded


def files(**contents: bytes) -> dict:
    return {name: (lambda data=data: data) for name, data in contents.items()}


def jsonl(*records: object) -> bytes:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return "\n".join(lines).encode()


def turns(*pairs: str) -> list[dict]:
    roles = ["user", "assistant"] * len(pairs)
    return [{"role": role, "content": text} for role, text in zip(roles, pairs, strict=False)]


def test_documents_from_every_format_and_bad_rows_quarantined_with_file_line_rule(params):
    raw = files(
        **{
            "docs/a.md": b"# Shipping\n\nStandard shipping takes 3-5 business days.",
            "docs/b.html": (
                b"<html><body><script>x()</script><p>Returns within 30 days.</p></body></html>"
            ),
            "docs/c.jsonl": jsonl(
                {"text": "Gift cards never expire at all."}, "{not json", {"t": 1}
            ),
            "docs/d.txt": b"\x00\x01\x02\x03binary\x00",
            "docs/e.txt": b"   ",
        }
    )
    documents, quarantine, counts = nodes.read_documents(raw, params)
    assert sorted(documents["source"]) == ["docs/a.md", "docs/b.html", "docs/c.jsonl"]
    assert "x()" not in " ".join(documents["text"])
    rules = {(q.source, q.line, q.rule) for q in quarantine.itertuples()}
    assert ("docs/c.jsonl", 2, "malformed_json") in rules
    assert ("docs/c.jsonl", 3, "schema") in rules
    assert {r[2] for r in rules if r[0] == "docs/d.txt"} == {"binary_file"}
    assert {r[2] for r in rules if r[0] == "docs/e.txt"} == {"empty_file"}
    per_file = counts.set_index("source")["rows_seen"]
    assert per_file["docs/c.jsonl"] == 3


def test_strict_mode_stops_at_bad_input_naming_file_line_and_rule(params):
    params["strict"] = True
    raw = files(**{"c.jsonl": jsonl({"prompt": "q", "response": "a"}, "oops")})
    with pytest.raises(nodes.IngestError, match=r"c\.jsonl:2: malformed_json"):
        nodes.read_conversations(raw, params)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"messages": turns("hi")}, "end with an assistant"),
        (
            {
                "messages": [
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "x"},
                ]
            },
            "alternate",
        ),
        ({"messages": [{"role": "robot", "content": "a"}]}, "needs a role"),
        ({"messages": [{"role": "user", "content": " "}]}, "no content"),
        ({"prompt": "only a prompt"}, "'prompt' and 'response'"),
    ],
)
def test_conversation_schema_rules(record, reason):
    fields, why = nodes.conversation_fields(record)
    assert fields is None
    assert reason in why


def test_preferences_in_text_and_messages_form(params):
    raw = files(
        **{
            "p.jsonl": jsonl(
                {"prompt": "Refund?", "chosen": "Within 5 days.", "rejected": "No."},
                {
                    "chosen": turns("Refund?", "Within 5 days."),
                    "rejected": turns("Refund?", "Never."),
                },
                {"prompt": "q", "chosen": "same", "rejected": "same"},
            )
        }
    )
    preferences, quarantine, _ = nodes.read_preferences(raw, params)
    assert preferences[["prompt", "chosen", "rejected"]].values.tolist() == [
        ["Refund?", "Within 5 days.", "No."],
        ["Refund?", "Within 5 days.", "Never."],
    ]
    assert quarantine["detail"].tolist() == ["chosen equals rejected"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {"prompt": [{"role": "robot"}], "chosen": turns("q", "a"), "rejected": turns("q", "b")},
            "prompt: message 0 needs a role among ['system', 'user', 'assistant']",
        ),
        (
            {"prompt": "   ", "chosen": turns("q", "a"), "rejected": turns("q", "b")},
            "missing or empty ['prompt']",
        ),
    ],
)
def test_preferences_in_messages_form_refuse_a_bad_prompt(record, reason):
    fields, why = nodes.preference_fields(record)
    assert fields is None
    assert why == reason


def test_preferences_keep_their_origin_and_reviewer(params):
    human = {"origin": "human", "reviewer": "alice", "reviewed_at": "2026-11-22T10:00:00+00:00"}
    raw = files(
        **{
            "p.jsonl": jsonl(
                {"prompt": "Refund?", "chosen": "Within 5 days.", "rejected": "No."},
                {"prompt": "Hours?", "chosen": "9 to 5.", "rejected": "Ask.", **human},
                {
                    "prompt": "Track?",
                    "chosen": "By link.",
                    "rejected": "No.",
                    "origin": "ai_feedback",
                },
                {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go.", "origin": "rumour"},
            )
        }
    )
    preferences, quarantine, _ = nodes.read_preferences(raw, params)
    assert preferences[["origin", "reviewer", "reviewed_at"]].values.tolist() == [
        ["dataset", "", ""],
        ["human", "alice", "2026-11-22T10:00:00+00:00"],
        ["ai_feedback", "", ""],
    ]
    assert quarantine["detail"].tolist() == [
        "origin 'rumour' is not one of ['dataset', 'human', 'ai_feedback']"
    ]


def frame(kind: str, rows: list[dict]) -> pd.DataFrame:
    base = {"source": "f.jsonl", "category": "jsonl"}
    records = [{**base, "id": f"{kind}-{i}", "line": i + 1, **row} for i, row in enumerate(rows)]
    return pd.DataFrame(records, columns=nodes.COLUMNS[kind])


def empty(kind: str) -> pd.DataFrame:
    return frame(kind, [])


def test_cleaning_normalises_strips_boilerplate_and_enforces_lengths(params):
    footer = "Northwind Outfitters - all rights reserved"
    texts = [f"Topic {i}: caf\u0065\u0301 \x07opens  at {i}.\r\n{footer}" for i in range(6)]
    documents = frame("documents", [{"text": t} for t in [*texts, "tiny"]])
    cleaned, _, _, _, quarantine, counts = nodes.clean_records(
        documents, empty("conversations"), empty("preferences"), empty("validation"), params
    )
    assert cleaned["text"].tolist()[0] == "Topic 0: café opens at 0."
    assert counts["boilerplate_lines"] == 1
    assert quarantine["rule"].tolist() == ["too_short"]
    assert quarantine["line"].tolist() == [7]


def test_personal_data_is_redacted_everywhere_and_counted(params):
    documents = frame("documents", [{"text": "Write to ann@example.com or call +1 415 555 0134."}])
    conversations = frame(
        "conversations", [{"messages": turns("My card is 4111 1111 1111 1111", "Thanks")}]
    )
    result = nodes.redact_personal_data(
        documents, conversations, empty("preferences"), empty("validation"), params
    )
    redacted_docs, redacted_chats, _, _, counts = result
    assert "ann@example.com" not in redacted_docs["text"][0]
    assert "<EMAIL>" in redacted_docs["text"][0]
    assert "4111" not in redacted_chats["messages"][0][0]["content"]
    assert counts["documents"] == {"email": 1, "phone": 1}
    assert counts["conversations"] == {"card_number": 1}


def test_exact_and_near_duplicates_across_files_keep_the_earliest(params):
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word50", "changed")
    rows = [
        {"source": "b.jsonl", "line": 1, "category": "jsonl", "text": base},
        {"source": "a.jsonl", "line": 2, "category": "jsonl", "text": near},
        {
            "source": "a.jsonl",
            "line": 1,
            "category": "jsonl",
            "text": "something else entirely " * 5,
        },
        {"source": "c.jsonl", "line": 1, "category": "jsonl", "text": base},
    ]
    documents = pd.DataFrame(rows)
    kept, *_, quarantine, counts = nodes.drop_duplicates(
        documents, empty("conversations"), empty("preferences"), empty("validation"), params
    )
    assert kept["source"].tolist() == ["a.jsonl", "a.jsonl"]
    assert sorted(quarantine["rule"]) == ["duplicate", "near_duplicate"]
    assert counts["documents"] == {"rows": 4, "exact": 1, "near": 1}
    assert kept["id"].is_unique


def test_ids_and_duplicates_do_not_depend_on_chunks_or_workers(params, monkeypatch):
    base = [" ".join(f"w{i}x{j}" for j in range(60)) for i in range(40)]
    texts = [*base, base[3], base[7].replace("w7x30", "other"), base[0]]
    documents = frame("documents", [{"text": text} for text in texts])
    chats = frame("conversations", [{"messages": turns(f"q {t}", "a")} for t in texts[:20]])

    def dedup(workers: int) -> tuple:
        outputs = nodes.drop_duplicates(
            documents,
            chats,
            empty("preferences"),
            empty("validation"),
            {**params, "workers": workers},
        )
        return outputs[0], outputs[1], outputs[4], outputs[5]

    whole = dedup(1)
    monkeypatch.setattr(nodes, "_CHUNK_CHARS", 500)  # a task per one or two rows
    for result in (dedup(1), dedup(2)):
        for expected, found in zip(whole[:3], result[:3], strict=True):
            pd.testing.assert_frame_equal(found, expected)
        assert result[3] == whole[3]
    kept_documents, kept_chats, quarantine, counts = whole
    assert counts["documents"] == {"rows": 43, "exact": 2, "near": 1}
    assert quarantine["line"].tolist() == [41, 42, 43]
    # An id is the SHA-256 of the row's parts, each followed by "\x1f": stable across runs.
    digest = hashlib.sha256((texts[0] + "\x1f").encode()).hexdigest()
    assert kept_documents["id"][0] == "doc-" + digest[:16]
    chat_digest = hashlib.sha256(f"user\x1fq {texts[0]}\x1fassistant\x1fa\x1f".encode())
    assert kept_chats["id"][0] == "conv-" + chat_digest.hexdigest()[:16]


def conversation_frame(count: int) -> pd.DataFrame:
    rows = [{"messages": turns(f"question {i}", f"answer {i}")} for i in range(count)]
    return frame("conversations", rows)


def test_split_is_deterministic_disjoint_and_complete(params):
    conversations = conversation_frame(200)
    train, held_out, validation = nodes.split_conversations(
        conversations, empty("validation"), params
    )
    again = nodes.split_conversations(conversations, empty("validation"), params)
    assert train["id"].tolist() == again[0]["id"].tolist()
    assert set(train["id"]).isdisjoint(held_out["id"])
    assert len(train) + len(held_out) == 200
    assert 30 < len(held_out) < 90
    assert validation["reference"].str.startswith("answer").all()


def test_validation_leaks_are_removed_from_training_or_fail_the_run(params):
    prompt = (
        "Is there a reduced price for people in college and how do I prove that I qualify for it?"
    )
    validation = pd.DataFrame(
        [
            {
                "id": "val-1",
                "prompt": prompt,
                "reference": "Yes, 10% off.",
                "context": None,
                "messages": None,
            }
        ]
    )
    documents = frame("documents", [{"text": "Unrelated text about tents and boots in winter."}])
    leaked_chat = turns(f"Hello! {prompt} Thanks.", "Yes.")
    conversations = frame(
        "conversations", [{"messages": turns("Hi", "Hello")}, {"messages": leaked_chat}]
    )
    _, kept_chats, _, quarantine, report = nodes.remove_validation_leaks(
        documents, conversations, empty("preferences"), validation, params
    )
    assert len(kept_chats) == 1
    assert quarantine["rule"].tolist() == ["validation_leak"]
    assert quarantine["line"].tolist() == [2]
    assert report["leaked_validation_examples"] == ["val-1"]
    params["leakage"]["action"] = "fail"
    with pytest.raises(nodes.IngestError, match="leaked"):
        nodes.remove_validation_leaks(
            documents, conversations, empty("preferences"), validation, params
        )


def test_accounting_balances_only_when_every_row_is_placed():
    files_seen = pd.DataFrame(
        [
            {
                "source": "a.jsonl",
                "kind": "documents",
                "rows_seen": 3,
                "encoding": "utf-8",
                "html_text_from": None,
            }
        ]
    )
    out = pd.DataFrame({"source": ["a.jsonl", "a.jsonl"], "line": [1, 2]})
    quarantine = pd.DataFrame([nodes.quarantine_entry("a.jsonl", 3, "schema", "x", None)])
    accounting = nodes.account_for_every_row(
        quarantine, documents_files=files_seen, documents_train=out
    )
    assert accounting["balanced"].tolist() == [True]
    lost = nodes.account_for_every_row(
        quarantine.iloc[:0], documents_files=files_seen, documents_train=out
    )
    assert lost["balanced"].tolist() == [False]
