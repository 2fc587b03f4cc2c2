"""Ingest: read the four kinds of raw input, clean, redact personal data, de-duplicate, split.

Every row read ends up in an output or in the quarantine with the file, line and rule that
refused it, and ``account_for_every_row`` proves it per file. Nothing here imports torch or
transformers: ingest starts fast.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from llm_pipeline.hygiene import near_duplicates, parallel, pii, raw_files, readers, records
from llm_pipeline.pipelines.ingest import cleaning

logger = logging.getLogger(__name__)

RawFiles = dict[str, Callable[[], bytes]]
# A number of local worker processes, or the ``ray`` engine's RayWorkers.
Workers = Any
QUARANTINE_COLUMNS = ["source", "line", "rule", "detail", "record"]
ROLES = ("system", "user", "assistant")
KINDS = ("documents", "conversations", "preferences", "validation")
COLUMNS = {
    "documents": ["id", "source", "line", "category", "text"],
    "conversations": ["id", "source", "line", "category", "messages"],
    "preferences": [
        "id", "source", "line", "category", "prompt", "chosen", "rejected",
        "origin", "reviewer", "reviewed_at",
    ],
    "validation": [
        "id", "source", "line", "category", "prompt", "reference", "context", "messages"
    ],
}  # fmt: skip
FILE_COLUMNS = ["source", "kind", "rows_seen", "encoding", "html_text_from"]
_LOGGED_PER_NODE = 50


class IngestError(ValueError):
    """Bad input in strict mode: the message names the file, the line and the rule."""


def content_hash(*parts: str) -> str:
    """A stable hash of text parts; ids and splits derive from it, so reruns agree."""
    # Each part followed by "\x1f", hashed in one call: a call per part costs more than SHA-256.
    return hashlib.sha256("\x1f".join((*parts, "")).encode("utf-8")).hexdigest()


def quarantine_entry(source: str, line: int, rule: str, detail: str, record: Any) -> dict:
    return {"source": source, "line": line, "rule": rule, "detail": detail, "record": record}


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def engine_workers(params: dict) -> Workers:
    """Where the per-row work runs: a number of local processes (``engine: local``, as many as
    ``workers`` says) or the Ray cluster of ``ray`` (``engine: ray``)."""
    if params["engine"] == "ray":
        from llm_pipeline.hygiene import ray_engine

        return ray_engine.connect(params["ray"])
    if params["engine"] != "local":
        raise ValueError(f"ingest.engine must be 'local' or 'ray', not {params['engine']!r}")
    return parallel.worker_count(params["workers"])


def report_quarantined(entries: list[dict], params: dict, step: str) -> None:
    """Log each refused row by file, line and rule; in strict mode, stop instead."""
    report_described(described_entries(entries), len(entries), params, step)


def described_entries(entries: list[dict]) -> list[str]:
    """The first quarantine entries (as many as a node logs) as "file:line: rule: detail"."""
    return [
        f"{q['source']}:{q['line']}: {q['rule']}: {q['detail']}" for q in entries[:_LOGGED_PER_NODE]
    ]


def report_described(described: list[str], total: int, params: dict, step: str) -> None:
    """``report_quarantined`` of ``total`` refused rows, the first of them ``described``."""
    if params["strict"] and total:
        shown = "\n".join(described[:20])
        more = f"\n… and {total - 20} more" if total > 20 else ""
        raise IngestError(f"{step}: {total} rows refused (strict mode):\n{shown}{more}")
    for line in described[:_LOGGED_PER_NODE]:
        logger.warning("%s: %s", step, line)
    if total > _LOGGED_PER_NODE:
        logger.warning("%s: … and %d more quarantined rows", step, total - _LOGGED_PER_NODE)


def _text_field(record: dict, name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _category(source: str, kind_folder: str) -> str:
    """The sub-folder a file sits in below its kind's folder, else its format."""
    parts = PurePosixPath(source).parts
    if kind_folder in parts:
        below = parts[parts.index(kind_folder) + 1 : -1]
        if below:
            return below[0]
    return PurePosixPath(source).suffix.lstrip(".").lower() or "none"


def read_files(
    files: RawFiles, kind: str, params: dict, parse: Callable[[dict], tuple[dict | None, str]]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Records of ``kind`` from every file, what was refused, and how many rows each file had.

    ``parse`` turns a raw record into the kind's fields, or ``None`` and the schema rule broken.
    Files are read by ``params["workers"]`` processes; the results keep the files' order.
    """
    config = readers.ReaderConfig.model_validate(params["reader"])
    workers = engine_workers(params)
    if not isinstance(workers, int):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.read_files(files, kind, params, parse, config, workers)
    readings = parallel.map_in_order(
        _read_file,
        files,
        (files, kind, config, parse),
        workers,
        label=f"read {kind}",
        unit="files",
        part=_one_file,
    )
    rows, quarantine, file_counts = [], [], []
    for file_rows, file_quarantine, file_count in readings:
        rows += file_rows
        quarantine += file_quarantine
        file_counts.append(file_count)
    report_quarantined(quarantine, params, f"read {kind}")
    logger.info("Read %d %s rows from %d files", len(rows), kind, len(files))
    columns = [c for c in COLUMNS[kind] if c != "id"]
    return (
        _frame(rows, columns),
        _frame(quarantine, QUARANTINE_COLUMNS),
        _frame(file_counts, FILE_COLUMNS),
    )


def _one_file(shared: tuple, source: str) -> tuple[tuple, str]:
    """What reading ``source`` needs of ``read_files``' shared input: its own loader."""
    files, kind, config, parse = shared
    return ({source: files[source]}, kind, config, parse), source


def _read_file(shared: tuple, source: str) -> tuple[list[dict], list[dict], dict]:
    """Rows, quarantine entries and the row count of one file (run in a worker process)."""
    files, kind, config, parse = shared
    try:
        data = files[source]()
    except raw_files.RawFileRefused as refused:
        problem = readers.Quarantined(source, 0, refused.rule, refused.detail, None)
        reading = readers.FileReading(source, 1, [], [problem])
    else:
        reading = readers.read_raw_file(source, data, config)
    file_count = {
        "source": source,
        "kind": kind,
        "rows_seen": reading.rows_seen,
        "encoding": reading.encoding,
        "html_text_from": reading.html_text_from,
    }
    quarantine = [
        quarantine_entry(q.source, q.line, q.rule, q.detail, q.record) for q in reading.quarantined
    ]
    category = _category(source, kind)
    rows = []
    for record in reading.records:
        fields, reason = parse(record.fields)
        if fields is None:
            quarantine.append(
                quarantine_entry(source, record.line, "schema", reason, record.fields)
            )
            continue
        rows.append({"source": source, "line": record.line, "category": category, **fields})
    return rows, quarantine, file_count


def document_fields(record: dict) -> tuple[dict | None, str]:
    text = _text_field(record, "text")
    return ({"text": text}, "") if text else (None, "needs a non-empty 'text'")


def _messages(value: Any) -> tuple[list[dict] | None, str]:
    if not isinstance(value, list) or not value:
        return None, "'messages' must be a non-empty list"
    turns = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return None, f"message {index} needs a role among {list(ROLES)}"
        if _text_field(message, "content") is None:
            return None, f"message {index} has no content"
        turns.append({"role": message["role"], "content": message["content"]})
    return turns, ""


def conversation_fields(record: dict) -> tuple[dict | None, str]:
    """Turns as role/content ``messages``, from ``messages`` or ``prompt``/``response``.

    Turns must alternate user/assistant after an optional system message and end with the
    assistant.
    """
    if "messages" not in record:
        prompt, response = _text_field(record, "prompt"), _text_field(record, "response")
        if prompt is None or response is None:
            return None, "needs 'messages', or non-empty 'prompt' and 'response'"
        turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return {"messages": turns}, ""
    turns, reason = _messages(record["messages"])
    if turns is None:
        return None, reason
    dialogue = turns[1:] if turns[0]["role"] == "system" else turns
    expected = ["user", "assistant"] * (len(dialogue) // 2 + 1)
    if not dialogue or [t["role"] for t in dialogue] != expected[: len(dialogue)]:
        return None, "roles must alternate user, assistant after an optional system message"
    if dialogue[-1]["role"] != "assistant":
        return None, "the conversation must end with an assistant message"
    return {"messages": turns}, ""


def _last(turns: list[dict], role: str) -> str | None:
    return next((t["content"] for t in reversed(turns) if t["role"] == role), None)


def preference_fields(record: dict) -> tuple[dict | None, str]:
    """``prompt``/``chosen``/``rejected`` as text, or in TRL's conversational (messages) form."""
    chosen, rejected, prompt = record.get("chosen"), record.get("rejected"), record.get("prompt")
    if isinstance(chosen, list) and isinstance(rejected, list):
        chosen_turns, reason = _messages(chosen)
        rejected_turns, reason_rejected = _messages(rejected)
        if chosen_turns is None or rejected_turns is None:
            return None, reason or reason_rejected
        if isinstance(prompt, list):
            prompt_turns, reason = _messages(prompt)
            if prompt_turns is None:
                return None, f"prompt: {reason}"
            prompt_text = _last(prompt_turns, "user")
        elif prompt is None:  # the prompt is the user turn inside chosen
            prompt_text = _last(chosen_turns, "user")
        else:
            prompt_text = _text_field(record, "prompt")
        fields = {
            "prompt": prompt_text,
            "chosen": _last(chosen_turns, "assistant"),
            "rejected": _last(rejected_turns, "assistant"),
        }
    else:
        fields = {name: _text_field(record, name) for name in ("prompt", "chosen", "rejected")}
    missing = [name for name, value in fields.items() if not value]
    if missing:
        return None, f"missing or empty {missing}"
    if fields["chosen"] == fields["rejected"]:
        return None, "chosen equals rejected"
    origin = _text_field(record, "origin") or "dataset"
    if origin not in records.PREFERENCE_ORIGINS:
        return None, f"origin '{origin}' is not one of {list(records.PREFERENCE_ORIGINS)}"
    return {**fields, "origin": origin, **_review_fields(record)}, ""


def _review_fields(record: dict) -> dict[str, str]:
    """Who judged a pair and when (human review); empty for pairs that came otherwise."""
    return {name: _text_field(record, name) or "" for name in ("reviewer", "reviewed_at")}


def validation_fields(record: dict) -> tuple[dict | None, str]:
    prompt, reference = _text_field(record, "prompt"), _text_field(record, "reference")
    if prompt is None or reference is None:
        return None, "needs non-empty 'prompt' and 'reference'"
    context = _text_field(record, "context")
    return {"prompt": prompt, "reference": reference, "context": context, "messages": None}, ""


def read_documents(raw_documents: RawFiles, params: dict) -> tuple:
    """Documents: one per txt, md, html or pdf file; one per jsonl, csv or parquet row."""
    return read_files(raw_documents, "documents", params, document_fields)


def read_conversations(raw_conversations: RawFiles, params: dict) -> tuple:
    """Conversations as role/content ``messages``."""
    return read_files(raw_conversations, "conversations", params, conversation_fields)


def read_preferences(raw_preferences: RawFiles, params: dict) -> tuple:
    """Preference pairs (``prompt``, ``chosen``, ``rejected``); a pair must differ."""
    return read_files(raw_preferences, "preferences", params, preference_fields)


def read_validation_examples(raw_validation: RawFiles, params: dict) -> tuple:
    """Explicit held-out examples (``prompt``, ``reference``, optional ``context``)."""
    return read_files(raw_validation, "validation", params, validation_fields)


TEXT_FIELDS = {
    "documents": ("text",),
    "preferences": ("prompt", "chosen", "rejected"),
    "validation": ("prompt", "reference", "context"),
}


def _texts(frame: pd.DataFrame, kind: str) -> dict[str, list]:
    """The text fields of ``frame`` by column; a conversation's turns' contents one after
    another, in one list under ``messages``."""
    if kind == "conversations":
        return {"messages": [t["content"] for turns in frame["messages"] for t in turns]}
    return {column: frame[column].tolist() for column in TEXT_FIELDS.get(kind, ())}


def _with_texts(frame: pd.DataFrame, kind: str, texts: dict[str, list]) -> pd.DataFrame:
    """A copy of ``frame`` with the text fields ``_texts`` gave replaced by ``texts``."""
    frame = frame.copy()
    if kind == "conversations":
        contents = iter(texts["messages"])
        frame["messages"] = [
            [{"role": t["role"], "content": next(contents)} for t in turns]
            for turns in frame["messages"]
        ]
    else:
        for column, values in texts.items():
            frame[column] = values
    return frame


def _with_changed_texts(
    frame: pd.DataFrame, kind: str, texts: dict[str, list], changed: bool
) -> pd.DataFrame:
    """``_with_texts``, or just a copy when no text changed: rebuilding every conversation's
    turns costs more than all the cleaning. An empty table goes through ``_with_texts``
    all the same, which sets the dtypes of its columns as later nodes expect them."""
    return _with_texts(frame, kind, texts) if changed or frame.empty else frame.copy()


_CHUNK_CHARS = 1 << 20  # tasks of about a MB: enough of them to keep every worker busy


def _text_tasks(texts: dict[str, dict[str, list]]) -> list[tuple[str, str, range]]:
    """(kind, column, index range) chunks of every text field, about ``_CHUNK_CHARS`` each."""
    return [
        (kind, column, indices)
        for kind, columns in texts.items()
        for column, values in columns.items()
        for indices in parallel.chunk_ranges(
            [len(v) if isinstance(v, str) else 0 for v in values], _CHUNK_CHARS
        )
    ]


def _apply_to_texts(
    texts: dict[str, dict[str, list]],
    function: Callable[[tuple, tuple[str, str, range]], list[tuple[int, Any]]],
    config: Any,
    params: dict,
    label: str,
) -> list[tuple[str, str, list[tuple[int, Any]]]]:
    """(kind, column, [(index, result)]) of ``function`` over chunks of ``texts``, in order."""
    tasks = _text_tasks(texts)
    workers = engine_workers(params)
    sizes = [len(indices) for _, _, indices in tasks]
    results = parallel.map_in_order(
        function,
        tasks,
        (texts, config),
        workers,
        label=label,
        sizes=sizes,
        unit="texts",
        part=_texts_of_chunk,
    )
    return [(kind, column, found) for (kind, column, _), found in zip(tasks, results, strict=True)]


def _texts_of_chunk(shared: tuple, task: tuple[str, str, range]) -> tuple[tuple, tuple]:
    """What a chunk of ``_apply_to_texts`` needs: its texts, at their indices."""
    texts, config = shared
    kind, column, indices = task
    window = parallel.Window(texts[kind][column], indices.start, indices.stop)
    return ({kind: {column: window}}, config), task


def _changed(shared: tuple, task: tuple[str, str, range]) -> list[tuple[int, str]]:
    """(index, changed text) for the texts of a chunk that ``change`` alters (in a worker)."""
    texts, change = shared
    kind, column, indices = task
    values = texts[kind][column]
    changed = []
    for index in indices:
        text = values[index]
        if isinstance(text, str):
            new = change(text)
            if new != text:
                changed.append((index, new))
    return changed


def _pii_spans(shared: tuple, task: tuple[str, str, range]) -> list[tuple[int, list]]:
    """(index, spans to redact) for the texts of a chunk holding personal data (in a worker)."""
    texts, config = shared
    kind, column, indices = task
    values = texts[kind][column]
    found = []
    for index in indices:
        text = values[index]
        if isinstance(text, str):
            spans = pii.redaction_spans(text, config)
            if spans:
                found.append((index, spans))
    return found


def _length_problem(row: dict, kind: str, config: cleaning.CleaningConfig) -> str | None:
    if kind == "documents":
        low, high, texts = config.min_document_chars, config.max_document_chars, [row["text"]]
    else:
        low, high = config.min_message_chars, config.max_message_chars
        if kind == "conversations":
            texts = [t["content"] for t in row["messages"]]
        else:
            texts = [row[c] for c in TEXT_FIELDS[kind] if c != "context"]
    for text in texts:
        if len(text) < low:
            return f"too_short: {len(text)} characters, at least {low} required"
        if len(text) > high:
            return f"too_long: {len(text)} characters, at most {high} allowed"
    return None


def _rows_of_wrong_length(
    frame: pd.DataFrame, kind: str, config: cleaning.CleaningConfig
) -> list[int]:
    """Positions of the rows ``_length_problem`` refuses, found from column lengths alone."""
    if frame.empty:
        return []
    if kind == "documents":
        low, high = config.min_document_chars, config.max_document_chars
        return [i for i, text in enumerate(frame["text"]) if not low <= len(text) <= high]
    low, high = config.min_message_chars, config.max_message_chars
    if kind == "conversations":
        return [
            i
            for i, turns in enumerate(frame["messages"])
            if not all(low <= len(turn["content"]) <= high for turn in turns)
        ]
    columns = [frame[c].tolist() for c in TEXT_FIELDS[kind] if c != "context"]
    return [
        i
        for i, texts in enumerate(zip(*columns, strict=True))
        if not all(low <= len(text) <= high for text in texts)
    ]


def clean_records(
    documents: pd.DataFrame,
    conversations: pd.DataFrame,
    preferences: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Normalise every text, strip repeated boilerplate lines from documents, enforce lengths."""
    config = cleaning.CleaningConfig.model_validate(params["cleaning"])
    frames = dict(zip(KINDS, (documents, conversations, preferences, validation), strict=True))
    if on_cluster(frames.values()):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.clean_records(frames, config, params, engine_workers(params))
    frames = cleaned_texts(frames, config, params)
    # Counted here, in this process, with the local engine (the ray engine counts hashed lines
    # in a group-by on the cluster).
    boilerplate = cleaning.boilerplate_lines(frames["documents"]["text"].tolist(), config)
    if boilerplate:
        frames["documents"] = without_lines(frames["documents"], boilerplate, params)
    frames, quarantine = with_lengths_checked(frames, config)
    report_quarantined(quarantine, params, "clean")
    logger.info("Removed %d boilerplate lines seen in many documents", len(boilerplate))
    counts = {"boilerplate_lines": len(boilerplate)}
    return (*frames.values(), _frame(quarantine, QUARANTINE_COLUMNS), counts)


def on_cluster(tables: Any) -> bool:
    """Whether the tables are the ``ray`` engine's, kept on its cluster."""
    from llm_pipeline.hygiene.ray_engine import ClusterTable

    return any(isinstance(table, ClusterTable) for table in tables)


def cleaned_texts(
    frames: dict[str, pd.DataFrame], config: cleaning.CleaningConfig, params: dict
) -> dict[str, pd.DataFrame]:
    """The tables with every text normalised (``cleaning.clean_text``)."""
    texts = {kind: _texts(frame, kind) for kind, frame in frames.items()}
    changed_kinds = set()
    cleaner = functools.partial(cleaning.clean_text, config=config)
    for kind, column, changed in _apply_to_texts(texts, _changed, cleaner, params, "clean"):
        values = texts[kind][column]
        for index, clean in changed:
            values[index] = clean
            changed_kinds.add(kind)
    return {
        kind: _with_changed_texts(frame, kind, texts[kind], kind in changed_kinds)
        for kind, frame in frames.items()
    }


def without_lines(documents: pd.DataFrame, lines: set[str], params: dict) -> pd.DataFrame:
    """The documents without the given (boilerplate) lines."""
    texts = {"documents": {"text": documents["text"].tolist()}}
    values = texts["documents"]["text"]
    for _, _, changed in _apply_to_texts(
        texts,
        _changed,
        functools.partial(cleaning.remove_lines, lines=frozenset(lines)),
        params,
        "remove boilerplate",
    ):
        for index, text in changed:
            values[index] = text
    return _with_texts(documents, "documents", texts["documents"])


def with_lengths_checked(
    frames: dict[str, pd.DataFrame], config: cleaning.CleaningConfig
) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """The tables without their rows of a text too short or too long, and those rows'
    quarantine entries."""
    quarantine, kept = [], {}
    for kind, frame in frames.items():
        refused = _rows_of_wrong_length(frame, kind, config)
        for row in frame.iloc[refused].to_dict(orient="records"):
            rule, detail = _length_problem(row, kind, config).split(": ", 1)
            record = {k: v for k, v in row.items() if k not in ("source", "line", "category")}
            quarantine.append(quarantine_entry(row["source"], row["line"], rule, detail, record))
        keep = np.ones(len(frame), dtype=bool)
        keep[refused] = False
        kept[kind] = frame[keep].reset_index(drop=True)
    return kept, quarantine


def redact_personal_data(
    documents: pd.DataFrame,
    conversations: pd.DataFrame,
    preferences: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Replace personal data and secrets by typed placeholders; count them per kind and type."""
    frames = dict(zip(KINDS, (documents, conversations, preferences, validation), strict=True))
    if on_cluster(frames.values()):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.redact_personal_data(frames, params, engine_workers(params))
    redacted, counts = redacted_frames(frames, params)
    for kind, found in counts.items():
        if found:
            logger.info("Redacted in %s: %s", kind, found)
    return (*redacted.values(), counts)


def redacted_frames(
    frames: dict[str, pd.DataFrame], params: dict
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    """The tables with personal data replaced, and how many of each type, per kind (types in
    alphabetical order)."""
    config = pii.PiiConfig.model_validate(params["pii"])
    texts = {kind: _texts(frame, kind) for kind, frame in frames.items()}
    counts: dict[str, dict[str, int]] = {kind: {} for kind in frames}
    for kind, column, found in _apply_to_texts(
        texts, _pii_spans, config, params, "find personal data"
    ):
        values, kind_counts = texts[kind][column], counts[kind]
        for index, spans in found:
            values[index], hits = pii.apply_redactions(values[index], spans)
            for kind_of_pii, count in hits.items():
                kind_counts[kind_of_pii] = kind_counts.get(kind_of_pii, 0) + count
    redacted = {
        kind: _with_changed_texts(frame, kind, texts[kind], bool(counts[kind]))
        for kind, frame in frames.items()
    }
    return redacted, {kind: dict(sorted(found.items())) for kind, found in counts.items()}


def drop_duplicates(
    documents: pd.DataFrame,
    conversations: pd.DataFrame,
    preferences: pd.DataFrame,
    validation: pd.DataFrame,
    params: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Exact (normalised hash) and near (MinHash LSH) duplicates across all files of a kind.

    Rows are ordered by file and line first, so the kept copy is always the earliest one.
    Validation examples are only de-duplicated exactly: near-identical questions are fine there.
    """
    config = near_duplicates.NearDuplicateConfig.model_validate(params["near_duplicates"])
    inputs = dict(zip(KINDS, (documents, conversations, preferences, validation), strict=True))
    if on_cluster(inputs.values()):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.drop_duplicates(inputs, config, params, engine_workers(params))
    frames = {
        kind: frame.sort_values(["source", "line"], kind="stable").reset_index(drop=True)
        for kind, frame in zip(
            KINDS, (documents, conversations, preferences, validation), strict=True
        )
    }
    # One pass over every row of every kind, spread over the workers, gives both the ids and
    # the signatures: the text is read once, and the workers start once for the whole node.
    tasks = [
        (kind, indices)
        for kind, frame in frames.items()
        for indices in parallel.chunk_ranges(_row_sizes(frame, kind), _CHUNK_CHARS)
    ]
    near_duplicates.build_tables()
    workers = engine_workers(params)
    sizes = [len(indices) for _, indices in tasks]
    results = parallel.map_in_order(
        _ids_and_signatures,
        tasks,
        (frames, config),
        workers,
        part=_rows_of_chunk,
        label="hash rows",
        sizes=sizes,
        unit="rows",
    )
    parts_of = {
        kind: [found for (of, _), found in zip(tasks, results, strict=True) if of == kind]
        for kind in frames
    }
    for kind, frame in frames.items():
        frame["id"] = [row_id for ids, _ in parts_of[kind] for row_id in ids]
    # Each step for every kind at once: on the ray engine, one group-by on the cluster.
    repeats = _repeated_ids({kind: frame["id"].tolist() for kind, frame in frames.items()}, workers)
    candidates, tables = {}, {}
    for kind, frame in frames.items():
        if kind != "validation" and len(frame) > 1:
            parts = parts_of[kind]
            signatures = np.concatenate([table[0] for _, table in parts])
            has_shingles = np.concatenate([table[1] for _, table in parts])
            candidates[kind] = [i for i in range(len(frame)) if i not in repeats[kind]]
            tables[kind] = (signatures[candidates[kind]], has_shingles[candidates[kind]])
    near = _near_duplicates(tables, config, workers)
    quarantine, counts, kept_frames = [], {}, []
    for kind, frame in frames.items():
        duplicate_of: dict[int, tuple[int, str, float]] = {
            index: (first, "duplicate", 1.0) for index, first in repeats[kind].items()
        }
        exact = len(duplicate_of)
        for found in near.get(kind, []):
            duplicate_of[candidates[kind][found.index]] = (
                candidates[kind][found.kept_index],
                "near_duplicate",
                found.similarity,
            )
        quarantine += duplicate_entries(frame, kind, duplicate_of)
        keep = ~frame.index.isin(list(duplicate_of))
        kept_frames.append(frame.loc[keep, COLUMNS[kind]].reset_index(drop=True))
        counts[kind] = {"rows": len(frame), "exact": exact, "near": len(duplicate_of) - exact}
        logger.info("%s: %d exact and %d near duplicates", kind, exact, len(duplicate_of) - exact)
    return (*kept_frames, _frame(quarantine, QUARANTINE_COLUMNS), counts)


def _repeated_ids(ids: dict[str, list[str]], workers: Workers) -> dict[str, dict[int, int]]:
    """Per kind, ``{index: index of the first row with the same id}`` of the rows repeating an
    earlier one."""
    if not isinstance(workers, int):
        return workers.first_of_each_id(ids)
    repeats: dict[str, dict[int, int]] = {}
    for kind, kind_ids in ids.items():
        first_by_id: dict[str, int] = {}
        repeats[kind] = {}
        for index, row_id in enumerate(kind_ids):
            first = first_by_id.setdefault(row_id, index)
            if first != index:
                repeats[kind][index] = first
    return repeats


def _near_duplicates(
    tables: dict[str, tuple[np.ndarray, np.ndarray]],
    config: near_duplicates.NearDuplicateConfig,
    workers: Workers,
) -> dict[str, list[near_duplicates.NearDuplicate]]:
    """Per kind, the near duplicates among its rows' (signatures, has shingles)."""
    if not isinstance(workers, int):
        return workers.near_duplicates_among(tables, config)
    return {
        kind: near_duplicates.near_duplicates_among(signatures, has_shingles, config)
        for kind, (signatures, has_shingles) in tables.items()
    }


_ID_PREFIXES = {
    "documents": "doc-",
    "conversations": "conv-",
    "preferences": "pref-",
    "validation": "val-",
}


def _row_sizes(frame: pd.DataFrame, kind: str) -> list[int]:
    """About how many characters each row holds: only to cut the work into even chunks."""
    if frame.empty:
        return []
    if kind == "conversations":
        return [sum(len(turn["content"]) for turn in turns) for turns in frame["messages"]]
    column = "text" if kind == "documents" else "prompt"
    return [len(text) for text in frame[column]]


def _rows_of_chunk(shared: tuple, task: tuple[str, range]) -> tuple[tuple, tuple]:
    """What a chunk of ``drop_duplicates`` needs: its rows, as a table of their own."""
    frames, config = shared
    kind, indices = task
    rows = frames[kind].iloc[indices.start : indices.stop].reset_index(drop=True)
    return ({kind: rows}, config), (kind, range(len(rows)))


def _ids_and_signatures(
    shared: tuple, task: tuple[str, range]
) -> tuple[list[str], tuple[np.ndarray, np.ndarray] | None]:
    """Content ids of a chunk of rows and, except for validation examples, the MinHash
    signatures of their text (run in a worker)."""
    frames, config = shared
    kind, indices = task
    rows = frames[kind].iloc[indices.start : indices.stop].itertuples(index=False)
    keys = [records.record_key(kind, row) for row in rows]
    ids = [_ID_PREFIXES[kind] + content_hash(*key)[:16] for key in keys]
    if kind == "validation":
        return ids, None
    texts = [records.comparable_text(kind, key) for key in keys]
    return ids, near_duplicates.signature_table(texts, config)


def duplicate_entries(
    frame: pd.DataFrame,
    kind: str,
    duplicate_of: dict[int, tuple[int, str, float]],
    kept_at: dict[int, tuple[str, int]] | None = None,
) -> list[dict]:
    """Quarantine entries of the duplicate rows, naming the kept row (columns read once): its
    file and line in ``frame``, or in ``kept_at`` when given."""
    if not duplicate_of:
        return []
    sources, lines = frame["source"].tolist(), frame["line"].tolist()
    fields = [k for k in COLUMNS[kind] if k not in ("id", "source", "line", "category")]
    values = {k: frame[k].tolist() for k in fields}
    entries = []
    for index, (kept, rule, similarity) in sorted(duplicate_of.items()):
        kept_source, kept_line = kept_at[kept] if kept_at else (sources[kept], lines[kept])
        detail = f"{similarity:.2f} similar to {kept_source} line {kept_line}"
        record = {k: values[k][index] for k in fields}
        entries.append(quarantine_entry(sources[index], int(lines[index]), rule, detail, record))
    return entries


def in_validation_split(row_id: str, fraction: float, salt: str) -> bool:
    """Whether a row belongs to the held-out side: a hash of its id, so reruns agree."""
    bucket = int(content_hash(salt, row_id)[:12], 16) / float(16**12)
    return bucket < fraction


def _split(frame: pd.DataFrame, fraction: float, salt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    held_out = frame["id"].map(lambda row_id: in_validation_split(row_id, fraction, salt))
    held_out = held_out.astype(bool)
    return frame[~held_out].reset_index(drop=True), frame[held_out].reset_index(drop=True)


def split_frame(frame: Any, fraction: float, salt: str) -> tuple[Any, Any]:
    """Train and held-out rows of a table, on either engine."""
    if on_cluster([frame]):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.split(frame, fraction, salt)
    return _split(frame, fraction, salt)


def split_documents(documents: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a fraction of documents for the pretraining evaluation loss."""
    return split_frame(documents, params["document_validation_fraction"], params["split_salt"])


def split_preferences(preferences: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a fraction of preference pairs to measure alignment on pairs never trained on."""
    return split_frame(preferences, params["preference_validation_fraction"], params["split_salt"])


def validation_examples_from_conversations(conversations: pd.DataFrame) -> pd.DataFrame:
    """The last assistant turn is the reference; everything before it is the prompt."""
    rows = []
    for row in conversations.itertuples(index=False):
        prompt_messages = list(row.messages[:-1])
        rows.append(
            {
                "id": "val-" + row.id.removeprefix("conv-"),
                "source": row.source,
                "line": row.line,
                "category": row.category,
                "prompt": prompt_messages[-1]["content"],
                "reference": row.messages[-1]["content"],
                "context": None,
                "messages": prompt_messages,
            }
        )
    return _frame(rows, COLUMNS["validation"])


def with_user_turns(explicit_validation: pd.DataFrame) -> pd.DataFrame:
    """Explicit validation examples with their prompt as the one user turn of ``messages``."""
    validation_set = explicit_validation.copy()
    validation_set["messages"] = [
        [{"role": "user", "content": prompt}] for prompt in validation_set["prompt"]
    ]
    return validation_set


def split_conversations(
    conversations: pd.DataFrame, explicit_validation: pd.DataFrame, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train and validation conversations, and the validation set evaluation scores.

    With explicit validation examples, those are the validation set; otherwise the held-out
    conversations become it, so no example is on both sides.
    """
    if on_cluster([conversations, explicit_validation]):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.split_conversations(conversations, explicit_validation, params)
    train, held_out = _split(
        conversations, params["conversation_validation_fraction"], params["split_salt"]
    )
    if len(explicit_validation):
        validation_set = with_user_turns(explicit_validation)
        logger.info("Validation set: %d explicit examples", len(validation_set))
    else:
        validation_set = validation_examples_from_conversations(held_out)
        logger.info("Validation set: %d held-out conversations", len(validation_set))
    return train, held_out, validation_set


def remove_validation_leaks(
    documents_train: pd.DataFrame,
    conversations_train: pd.DataFrame,
    preferences_train: pd.DataFrame,
    validation_set: pd.DataFrame,
    params: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Training rows sharing a long n-gram with a validation example: removed, or the run fails.

    ``leakage.fields`` says which validation fields are compared (the prompt by default: in a
    knowledge-base domain the reference answer repeats facts the documents rightly teach).
    """
    config = near_duplicates.LeakageConfig.model_validate({"ngram": params["leakage"]["ngram"]})
    fields = params["leakage"]["fields"]
    workers = engine_workers(params)
    trains = (documents_train, conversations_train, preferences_train)
    if on_cluster([*trains, validation_set]):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.remove_validation_leaks(
            dict(zip(("documents", "conversations", "preferences"), trains, strict=True)),
            validation_set,
            config,
            params,
            workers,
        )
    validation_texts = records.leakage_probes(
        validation_set, fields, params["leakage"]["min_words"]
    )
    quarantine, leaked_examples, kept = [], set(), []
    frames = {
        "documents": documents_train,
        "conversations": conversations_train,
        "preferences": preferences_train,
    }
    found = near_duplicates.leaked_ngrams_indexes(
        {kind: records.record_texts(kind, frame) for kind, frame in frames.items()},
        validation_texts,
        config,
        workers,
    )
    ids = validation_set["id"].tolist() if len(validation_set) else []
    for kind, frame in frames.items():
        leaking_rows = first_leaks(found[kind])
        leaked_examples.update(found[kind])
        leaking = {row: str(ids[example]) for row, example in leaking_rows.items()}
        frame, entries = without_leaks(frame, kind, leaking, config.ngram)
        kept.append(frame)
        quarantine += entries
    report = {
        "ngram": config.ngram,
        "fields": list(fields),
        "leaked_validation_examples": sorted(
            str(validation_set.iloc[i]["id"]) for i in leaked_examples
        ),
        "removed_training_rows": len(quarantine),
    }
    if quarantine and params["leakage"]["action"] == "fail":
        shown = "\n".join(f"{q['source']}:{q['line']}: {q['detail']}" for q in quarantine[:20])
        raise IngestError(f"Validation examples leaked into training data:\n{shown}")
    if quarantine:
        logger.warning(
            "%d validation examples leaked into %d training rows; those rows were removed",
            len(leaked_examples),
            len(quarantine),
        )
    return (*kept, _frame(quarantine, QUARANTINE_COLUMNS), report)


def first_leaks(leaks: dict[int, list[int]]) -> dict[int, int]:
    """{training row: the first validation example leaking into it} of ``leaks``
    ({validation example: training rows}, examples ascending)."""
    leaking_rows: dict[int, int] = {}
    for validation_index, train_indices in leaks.items():
        for train_index in train_indices:
            leaking_rows.setdefault(train_index, validation_index)
    return leaking_rows


def without_leaks(
    frame: pd.DataFrame, kind: str, leaking: dict[int, str], ngram: int
) -> tuple[pd.DataFrame, list[dict]]:
    """``frame`` without its rows ``leaking`` names (row: the id of the validation example that
    leaked into it), and their quarantine entries."""
    quarantine = []
    for train_index, example_id in sorted(leaking.items()):
        row = frame.iloc[train_index]
        detail = f"shares a {ngram}-word run with validation example {example_id}"
        record = {k: row[k] for k in COLUMNS[kind] if k not in ("source", "line", "category")}
        quarantine.append(
            quarantine_entry(row["source"], int(row["line"]), "validation_leak", detail, record)
        )
    return frame.drop(index=list(leaking)).reset_index(drop=True), quarantine


def _redact_nested(value: Any, config: pii.PiiConfig) -> Any:
    if isinstance(value, str):
        return pii.redact(value, config)[0]
    if isinstance(value, dict):
        return {key: _redact_nested(item, config) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_nested(item, config) for item in value]
    return value


def gather_quarantine(params: dict, *quarantines: pd.DataFrame) -> pd.DataFrame:
    """One quarantine for the whole ingest, ordered by file and line.

    Refused records are kept for inspection, with personal data redacted like everything else
    ingest writes.
    """
    frames = [frame for frame in quarantines if len(frame)]
    if not frames:
        return _frame([], QUARANTINE_COLUMNS)
    config = pii.PiiConfig.model_validate(params["pii"])
    if on_cluster(frames):
        from llm_pipeline.pipelines.ingest import cluster

        return cluster.gather_quarantine(frames, config, engine_workers(params))
    merged = redacted_quarantine(pd.concat(frames, ignore_index=True), config)
    for rule, count in merged["rule"].value_counts().items():
        logger.warning("Quarantined %d rows: %s", count, rule)
    return merged.sort_values(["source", "line"], kind="stable").reset_index(drop=True)


def redacted_quarantine(quarantine: pd.DataFrame, config: pii.PiiConfig) -> pd.DataFrame:
    """Quarantine entries with personal data redacted in their records and details."""
    quarantine = quarantine.copy()
    quarantine["record"] = [_redact_nested(record, config) for record in quarantine["record"]]
    quarantine["detail"] = [_redact_nested(detail, config) for detail in quarantine["detail"]]
    return quarantine


def account_for_every_row(quarantine: pd.DataFrame, **tables: pd.DataFrame) -> pd.DataFrame:
    """Per input file: rows in, rows out, rows quarantined, and whether they add up; for an
    HTML page also whether its main content or (none found) the whole page was read.

    ``tables`` named ``*_files`` say how many rows each file had; the others are the outputs.
    A row that is in two outputs (a held-out conversation is also a validation example)
    counts once.
    """
    files = [frame for name, frame in tables.items() if name.endswith("_files")]
    outputs = [
        frame for name, frame in tables.items() if not name.endswith("_files") and len(frame)
    ]
    seen = pd.concat(files, ignore_index=True)
    if on_cluster([quarantine, *outputs]):
        from llm_pipeline.pipelines.ingest import cluster

        out, refused = cluster.rows_per_source(outputs, quarantine)
        return accounting_of(seen, out, refused)
    placed = pd.concat([frame[["source", "line"]] for frame in outputs], ignore_index=True)
    out = placed.drop_duplicates().groupby("source").size() if len(placed) else pd.Series(dtype=int)
    refused = quarantine.groupby("source").size() if len(quarantine) else pd.Series(dtype=int)
    return accounting_of(seen, out, refused)


def accounting_of(seen: pd.DataFrame, out: pd.Series, refused: pd.Series) -> pd.DataFrame:
    """The accounting of the files ``seen`` (their rows read), given the distinct rows placed
    in an output and the rows quarantined, per source."""
    accounting = seen[["source", "kind", "rows_seen", "html_text_from"]].copy()
    accounting["rows_out"] = accounting["source"].map(out).fillna(0).astype(int)
    accounting["rows_quarantined"] = accounting["source"].map(refused).fillna(0).astype(int)
    accounting["balanced"] = (
        accounting["rows_seen"] == accounting["rows_out"] + accounting["rows_quarantined"]
    )
    for row in accounting[~accounting["balanced"]].itertuples():
        logger.error(
            "%s: %d rows in, %d out, %d quarantined",
            row.source,
            row.rows_seen,
            row.rows_out,
            row.rows_quarantined,
        )
    return accounting.reset_index(drop=True)


def build_data_report(
    quarantine: pd.DataFrame,
    accounting: pd.DataFrame,
    cleaning_counts: dict,
    pii_counts: dict,
    duplicate_counts: dict,
    leakage: dict,
    **outputs: pd.DataFrame,
) -> tuple[dict, Any, pd.DataFrame]:
    """The data report as numbers, as a figure, and the length histogram for ``dvc plots``."""
    from llm_pipeline.pipelines.ingest import report

    hygiene = {
        "cleaning": cleaning_counts,
        "pii": pii_counts,
        "duplicates": duplicate_counts,
        "leakage": leakage,
    }
    if on_cluster([quarantine, *outputs.values()]):
        from llm_pipeline.pipelines.ingest import cluster

        summary, histogram = cluster.data_report(quarantine, accounting, hygiene, outputs)
        return summary, report.plot(summary, histogram), histogram
    by_kind = {
        "documents": pd.concat([outputs["documents_train"], outputs["documents_validation"]]),
        "conversations": pd.concat(
            [outputs["conversations_train"], outputs["conversations_validation"]]
        ),
        "preferences": pd.concat([outputs["preferences_train"], outputs["preferences_validation"]]),
        "validation": outputs["validation_set"],
    }
    histogram = report.length_histogram(by_kind)
    summary = report.summarise(by_kind, quarantine, accounting, hygiene)
    return summary, report.plot(summary, histogram), histogram
