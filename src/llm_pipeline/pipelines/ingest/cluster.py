"""Ingest's nodes on the ``ray`` engine, with every table kept on the cluster.

With ``ingest.engine: ray`` the tables the ingest nodes hand to each other are
``ClusterTable``s: pandas blocks in the Ray object store of the node that made them (spilled to
disk by Ray when the store is full), of which the Kedro process holds only references and
lengths. A block is the rows of one raw file or of several small ones (``block_bytes``), and
stays one block through every map. What runs where:

- **Per block, on the workers:** the same functions the local engine calls on a whole table
  (``nodes.cleaned_texts``, ``nodes.redacted_frames``, ``nodes.with_lengths_checked``,
  ``nodes._split``, ``nodes.duplicate_entries``, ``nodes.without_leaks``, ...), each called on
  one block with one local process. No rule has a second implementation here.
- **Grouping, on the cluster:** boilerplate lines (hashed) counted by a group-by; exact and near
  duplicates as in ``ray_engine``; the quarantine sorted by file and line through partitions of
  files; the rows placed per file counted in partitions of files.
- **Here, in the Kedro process:** integers and small tables only: block lengths, the indices of
  duplicates and the file and line of the rows they duplicate, counts per file, kind, rule and
  type, the first quarantine entries of each step for the log. The validation set is the one
  table brought here whole (its n-grams are the broadcast side of the leakage join; the
  evaluation reads it whole too).

``JSONLinesDataset`` writes a ``ClusterTable`` block by block, each block's lines made where
the block is.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from llm_pipeline.hygiene import near_duplicates, pii, raw_files, ray_engine, records
from llm_pipeline.hygiene.ray_engine import BlockResult, ClusterTable, RayWorkers
from llm_pipeline.pipelines.ingest import cleaning, nodes, report

logger = logging.getLogger(__name__)


def _local(params: dict) -> dict:
    """``params`` for a function called on one block, inside a Ray task: one local process."""
    return {**params, "engine": "local", "workers": 1}


def _table(results: list[BlockResult], table: int, columns: list[str]) -> ClusterTable:
    return ClusterTable.of(results, table, nodes._frame([], columns))


def _report(results: list[BlockResult], params: dict, step: str) -> int:
    """Log (or, in strict mode, refuse) the quarantine entries the blocks described; their
    number."""
    total = sum(result.small[0] for result in results)
    described = [line for result in results for line in result.small[1]]
    nodes.report_described(described, total, params, step)
    return total


def _described(entries: list[dict]) -> tuple[int, list[str]]:
    return len(entries), nodes.described_entries(entries)


# --- read -----------------------------------------------------------------------------------


def read_files(
    files: nodes.RawFiles,
    kind: str,
    params: dict,
    parse: Callable[[dict], tuple[dict | None, str]],
    config: Any,
    workers: RayWorkers,
) -> tuple[ClusterTable, ClusterTable, pd.DataFrame]:
    """``nodes.read_files`` with a task per block of files, whose rows stay where they were read.

    Files are taken in the order of their names (as the kept copy of a duplicate is chosen:
    first by file and line) and grouped into blocks of about ``block_bytes`` (a block is never
    less than one file); the table of files keeps the order the files were listed in."""
    ordered = sorted(files)
    sizes = [getattr(files[source], "size", 0) for source in ordered]
    calls = [
        (_read_block, ({s: files[s] for s in group}, kind, config, parse), group)
        for group in _groups(ordered, sizes, block_bytes(sum(sizes), workers.cpus))
    ]
    results = workers.run_blocks(calls, 2)
    total = _report(results, params, f"read {kind}")
    counts = {count["source"]: count for result in results for count in result.small[2]}
    rows = _table(results, 0, [c for c in nodes.COLUMNS[kind] if c != "id"])
    logger.info(
        "Read %d %s rows from %d files in %d blocks (%d quarantined)",
        len(rows),
        kind,
        len(files),
        len(rows.blocks),
        total,
    )
    return (
        rows,
        _table(results, 1, nodes.QUARANTINE_COLUMNS),
        nodes._frame([counts[source] for source in files], nodes.FILE_COLUMNS),
    )


BLOCK_BYTES = (1_000_000, 64_000_000)  # the least and most raw bytes a block gathers


def block_bytes(total: int, cpus: int) -> int:
    """How many bytes of raw files a block gathers: a few blocks per CPU, within
    ``BLOCK_BYTES``. The Kedro process keeps a reference, a length and a task's record per
    block (Ray's ownership of what it asked for), so blocks that grow with the corpus keep its
    memory flat."""
    smallest, largest = BLOCK_BYTES
    return int(min(largest, max(smallest, total / (4 * cpus))))


def _groups(sources: list[str], sizes: list[int], limit: int) -> list[list[str]]:
    """Consecutive files of at most ``limit`` bytes together (at least one file a group)."""
    groups: list[list[str]] = []
    total = 0
    for source, size in zip(sources, sizes, strict=True):
        if not groups or total + size > limit:
            groups.append([])
            total = 0
        groups[-1].append(source)
        total += size
    return groups


def _read_block(shared: tuple, sources: list[str]) -> tuple:
    rows, quarantine, counts = [], [], []
    for source in sources:
        file_rows, file_quarantine, file_count = nodes._read_file(shared, source)
        rows += file_rows
        quarantine += file_quarantine
        counts.append(file_count)
    kind = shared[1]
    return (
        (*_described(quarantine), counts),
        nodes._frame(rows, [c for c in nodes.COLUMNS[kind] if c != "id"]),
        nodes._frame(quarantine, nodes.QUARANTINE_COLUMNS),
    )


# --- clean ----------------------------------------------------------------------------------


def clean_records(
    frames: dict[str, ClusterTable],
    config: cleaning.CleaningConfig,
    params: dict,
    workers: RayWorkers,
) -> tuple:
    """``nodes.clean_records``: texts cleaned block by block; the documents' lines counted by a
    group-by on their hashes (each line once per document, as ``cleaning.boilerplate_lines``
    counts), and those seen in enough documents removed block by block; lengths checked."""
    local = _local(params)
    calls = [
        (_clean_block, block, kind, config, local)
        for kind, table in frames.items()
        for block in table.blocks
    ]
    cleaned = workers.run_blocks(calls, 2)
    counted = [result.tables[1] for result in cleaned if result.lengths[1]]
    boilerplate = workers.keys_counted_at_least(counted, config.boilerplate_min_documents)
    shared = workers.put(frozenset(int(key) for key in boilerplate))
    checked = workers.run_blocks(
        [
            (_check_block, result.tables[0], kind, config, shared, local)
            for (_, _, kind, _, _), result in zip(calls, cleaned, strict=True)
        ],
        2,
    )
    _report(checked, params, "clean")
    logger.info("Removed %d boilerplate lines seen in many documents", len(boilerplate))
    tables = []
    for kind in frames:
        mine = [r for (_, _, of, _, _), r in zip(calls, checked, strict=True) if of == kind]
        tables.append(ClusterTable.of(mine, 0, frames[kind].empty))
    quarantine = _table(checked, 1, nodes.QUARANTINE_COLUMNS)
    return (*tables, quarantine, {"boilerplate_lines": len(boilerplate)})


def line_key(line: str) -> int:
    """A stable 63-bit key of a line, the same in every process."""
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest()) >> 1


def _clean_block(
    block: pd.DataFrame, kind: str, config: cleaning.CleaningConfig, params: dict
) -> tuple:
    frame = nodes.cleaned_texts({kind: block}, config, params)[kind]
    seen_in: Counter[int] = Counter()
    if kind == "documents":
        for text in frame["text"]:
            seen_in.update(
                {
                    line_key(line)
                    for line in text.split("\n")
                    if len(line) >= config.boilerplate_min_line_chars
                }
            )
    counts = pd.DataFrame(
        {"key": np.fromiter(seen_in, np.int64), "count": np.fromiter(seen_in.values(), np.int64)}
    )
    return None, frame, counts


def _check_block(
    block: pd.DataFrame,
    kind: str,
    config: cleaning.CleaningConfig,
    boilerplate: frozenset[int],
    params: dict,
) -> tuple:
    if kind == "documents" and boilerplate:
        lines = {
            line
            for text in block["text"]
            for line in text.split("\n")
            if len(line) >= config.boilerplate_min_line_chars and line_key(line) in boilerplate
        }
        block = nodes.without_lines(block, lines, params)
    kept, quarantine = nodes.with_lengths_checked({kind: block}, config)
    return _described(quarantine), kept[kind], nodes._frame(quarantine, nodes.QUARANTINE_COLUMNS)


# --- redact ---------------------------------------------------------------------------------


def redact_personal_data(
    frames: dict[str, ClusterTable], params: dict, workers: RayWorkers
) -> tuple:
    """``nodes.redact_personal_data`` block by block; the counts added up here."""
    local = _local(params)
    calls = [
        (_redact_block, block, kind, local)
        for kind, table in frames.items()
        for block in table.blocks
    ]
    results = workers.run_blocks(calls, 1)
    counts: dict[str, Counter] = {kind: Counter() for kind in frames}
    for (_, _, kind, _), result in zip(calls, results, strict=True):
        counts[kind].update(result.small)
    found = {kind: {t: int(n) for t, n in sorted(c.items())} for kind, c in counts.items()}
    for kind, kind_found in found.items():
        if kind_found:
            logger.info("Redacted in %s: %s", kind, kind_found)
    tables = [
        ClusterTable.of(
            [r for (_, _, of, _), r in zip(calls, results, strict=True) if of == kind],
            0,
            table.empty,
        )
        for kind, table in frames.items()
    ]
    return (*tables, found)


def _redact_block(block: pd.DataFrame, kind: str, params: dict) -> tuple:
    frames, counts = nodes.redacted_frames({kind: block}, params)
    return counts[kind], frames[kind]


# --- duplicates -----------------------------------------------------------------------------


def drop_duplicates(
    frames: dict[str, ClusterTable],
    config: near_duplicates.NearDuplicateConfig,
    params: dict,
    workers: RayWorkers,
) -> tuple:
    """``nodes.drop_duplicates``: ids and signatures made block by block, exact and near
    duplicates found by group-bys on the cluster, the duplicates dropped block by block.

    Rows are numbered by file and line across a kind's blocks (a block holds whole files, and
    the blocks follow the files' names), so the kept copy is the local engine's."""
    calls = [
        (_hash_block, block, kind, offset, config)
        for kind, table in frames.items()
        for block, offset in zip(table.blocks, table.offsets, strict=True)
    ]
    made = workers.run_blocks(calls, 3)  # every kind's blocks at once
    hashed: dict[str, tuple[ClusterTable, list[BlockResult]]] = {}
    for kind, table in frames.items():
        results = [r for (_, _, of, _, _), r in zip(calls, made, strict=True) if of == kind]
        firsts = [result.small for result in results]
        if any(a[1] > b[0] for a, b in itertools.pairwise(firsts)):
            raise ValueError(f"The {kind} blocks are not in the order of their files.")
        with_ids = ClusterTable.of(results, 0, table.empty.assign(id=pd.Series(dtype=object)))
        hashed[kind] = (with_ids, results)
    found = workers.repeated_ids(
        [result.tables[1] for _, results in hashed.values() for result in results]
    )
    repeats: dict[str, dict[int, int]] = {kind: {} for kind in frames}
    for kind, index, first in zip(found["kind"], found["index"], found["first"], strict=True):
        repeats[kind][int(index)] = int(first)
    near = _near_duplicates(hashed, repeats, config, workers)
    quarantine_results, counts, kept_tables = [], {}, []
    for kind, (table, _) in hashed.items():
        duplicate_of: dict[int, tuple[int, str, float]] = {
            index: (first, "duplicate", 1.0) for index, first in repeats[kind].items()
        }
        exact = len(duplicate_of)
        duplicate_of.update(near.get(kind, {}))
        kept_at = _sources_at(table, sorted({kept for kept, _, _ in duplicate_of.values()}))
        calls = []
        for block, offset, length in zip(table.blocks, table.offsets, table.lengths, strict=True):
            mine = {
                index - offset: found
                for index, found in duplicate_of.items()
                if offset <= index < offset + length
            }
            calls.append(
                (_drop_block, block, kind, mine, {k: kept_at[k] for _, (k, _, _) in mine.items()})
            )
        results = workers.run_blocks(calls, 2)
        kept_tables.append(_table(results, 0, nodes.COLUMNS[kind]))
        quarantine_results += results
        counts[kind] = {"rows": len(table), "exact": exact, "near": len(duplicate_of) - exact}
        logger.info("%s: %d exact and %d near duplicates", kind, exact, len(duplicate_of) - exact)
    return (*kept_tables, _table(quarantine_results, 1, nodes.QUARANTINE_COLUMNS), counts)


def _hash_block(
    block: pd.DataFrame, kind: str, offset: int, config: near_duplicates.NearDuplicateConfig
) -> tuple:
    """The block in file and line order with its rows' ids; (kind, id, index) of its rows; their
    MinHash signatures (none for validation examples)."""
    block = block.sort_values(["source", "line"], kind="stable").reset_index(drop=True)
    ids, signatures = nodes._ids_and_signatures(({kind: block}, config), (kind, range(len(block))))
    block["id"] = ids
    index = pd.DataFrame(
        {"kind": kind, "id": ids, "index": np.arange(offset, offset + len(block), dtype=np.int64)}
    )
    sources = block["source"]
    return (sources.iloc[0], sources.iloc[-1]), block, index, signatures


def _near_duplicates(
    hashed: dict[str, tuple[ClusterTable, list[BlockResult]]],
    repeats: dict[str, dict[int, int]],
    config: near_duplicates.NearDuplicateConfig,
    workers: RayWorkers,
) -> dict[str, dict[int, tuple[int, str, float]]]:
    """Per kind (validation examples aside), {row: (kept row, "near_duplicate", similarity)}
    among the rows that repeat no earlier one, numbered as ``nodes.drop_duplicates`` numbers
    them: one group-by pass over every kind, kinds numbered one after another."""
    kinds = [k for k, (table, _) in hashed.items() if k != "validation" and len(table) > 1]
    base, bases, calls = 0, {}, []
    repeated_of = {kind: np.array(sorted(repeats[kind]), dtype=np.int64) for kind in kinds}
    for code, kind in enumerate(kinds):
        table, results = hashed[kind]
        bases[kind] = base
        repeated = repeated_of[kind]
        for result, offset, length in zip(results, table.offsets, table.lengths, strict=True):
            inside = repeated[(repeated >= offset) & (repeated < offset + length)] - offset
            # Candidates are numbered as the rows that repeat no earlier one.
            first = base + offset - int(np.searchsorted(repeated, offset))
            calls.append((_lsh_rows, result.tables[2], inside, code, first))
        base += len(table) - len(repeated)
    rows = [r.tables[0] for r in workers.run_blocks(calls, 1) if r.lengths[0]]
    found = workers.near_duplicate_rows(rows, config)
    near: dict[str, dict[int, tuple[int, str, float]]] = {kind: {} for kind in kinds}
    starts = np.array([bases[kind] for kind in kinds])
    for index, kept, similarity in zip(
        found["index"], found["kept"], found["similarity"], strict=True
    ):
        kind = kinds[int(np.searchsorted(starts, index, side="right")) - 1]
        repeated = repeated_of[kind]
        row = _row_of_candidate(int(index) - bases[kind], repeated)
        near[kind][row] = (
            _row_of_candidate(int(kept) - bases[kind], repeated),
            "near_duplicate",
            float(similarity),
        )
    return near


def _row_of_candidate(candidate: int, repeated: np.ndarray) -> int:
    """The row that is candidate number ``candidate`` when the ``repeated`` rows (ascending)
    are left out."""
    row = candidate
    while True:
        moved = candidate + int(np.searchsorted(repeated, row, side="right"))
        if moved == row:
            return row
        row = moved


def _lsh_rows(signatures: tuple, repeated: np.ndarray, code: int, first: int) -> tuple:
    """(kind, index, signature) of a block's candidates that have shingles."""
    table, has_shingles = signatures
    keep = np.ones(len(table), dtype=bool)
    keep[repeated] = False
    numbers = first + np.arange(int(keep.sum()), dtype=np.int64)
    present = has_shingles[keep]
    return None, pd.DataFrame(
        {
            "kind": np.full(int(present.sum()), code),
            "index": numbers[present],
            "signature": list(table[keep][present]),
        }
    )


def _sources_at(table: ClusterTable, indices: list[int]) -> dict[int, tuple[str, int]]:
    """{row: (file, line)} of the given rows of ``table``, read where their blocks are."""
    calls = []
    for block, offset, length in zip(table.blocks, table.offsets, table.lengths, strict=True):
        mine = [index - offset for index in indices if offset <= index < offset + length]
        if mine:
            calls.append((_source_lines, block, mine, offset))
    found: dict[int, tuple[str, int]] = {}
    for result in ray_engine.connected().run_blocks(calls, 0):
        found.update(result.small)
    return found


def _source_lines(block: pd.DataFrame, positions: list[int], offset: int) -> tuple:
    sources, lines = block["source"].tolist(), block["line"].tolist()
    return ({offset + p: (sources[p], int(lines[p])) for p in positions},)


def _drop_block(
    block: pd.DataFrame,
    kind: str,
    duplicate_of: dict[int, tuple[int, str, float]],
    kept_at: dict[int, tuple[str, int]],
) -> tuple:
    entries = nodes.duplicate_entries(block, kind, duplicate_of, kept_at)
    keep = ~block.index.isin(list(duplicate_of))
    return (
        None,
        block.loc[keep, nodes.COLUMNS[kind]].reset_index(drop=True),
        nodes._frame(entries, nodes.QUARANTINE_COLUMNS),
    )


# --- split ----------------------------------------------------------------------------------


def split(table: ClusterTable, fraction: float, salt: str) -> tuple[ClusterTable, ClusterTable]:
    """``nodes._split`` block by block."""
    results = ray_engine.connected().run_blocks(
        [(_split_block, block, fraction, salt) for block in table.blocks], 2
    )
    return ClusterTable.of(results, 0, table.empty), ClusterTable.of(results, 1, table.empty)


def _split_block(block: pd.DataFrame, fraction: float, salt: str) -> tuple:
    return None, *nodes._split(block, fraction, salt)


def split_conversations(
    conversations: ClusterTable, explicit_validation: ClusterTable, params: dict
) -> tuple[ClusterTable, ClusterTable, ClusterTable]:
    """``nodes.split_conversations`` block by block."""
    train, held_out = split(
        conversations, params["conversation_validation_fraction"], params["split_salt"]
    )
    if len(explicit_validation):
        source, make = explicit_validation, nodes.with_user_turns
        logger.info("Validation set: %d explicit examples", len(explicit_validation))
    else:
        source, make = held_out, nodes.validation_examples_from_conversations
        logger.info("Validation set: %d held-out conversations", len(held_out))
    results = ray_engine.connected().run_blocks(
        [(_made, make, block) for block in source.blocks], 1
    )
    return train, held_out, _table(results, 0, nodes.COLUMNS["validation"])


def _made(make: Callable[[pd.DataFrame], pd.DataFrame], block: pd.DataFrame) -> tuple:
    return None, make(block)


# --- leakage --------------------------------------------------------------------------------


def remove_validation_leaks(
    frames: dict[str, ClusterTable],
    validation_set: ClusterTable,
    config: near_duplicates.LeakageConfig,
    params: dict,
    workers: RayWorkers,
) -> tuple:
    """``nodes.remove_validation_leaks``: the validation set's n-grams sent to every block of
    training rows (a broadcast join), the leaking rows dropped where they are."""
    validation = validation_set.to_pandas()
    probes = records.leakage_probes(
        validation, params["leakage"]["fields"], params["leakage"]["min_words"]
    )
    ids = validation["id"].tolist() if len(validation) else []
    shared = workers.put(probes)
    kept, quarantine_results, leaked = [], [], set()
    for kind, table in frames.items():
        results = workers.run_blocks(
            [(_leaks_block, block, kind, shared, config) for block in table.blocks], 0
        )
        calls = []
        for block, result in zip(table.blocks, results, strict=True):
            leaked.update(result.small)
            leaking = nodes.first_leaks(result.small)
            calls.append(
                (
                    _drop_leaks,
                    block,
                    kind,
                    {r: str(ids[e]) for r, e in leaking.items()},
                    config.ngram,
                )
            )
        dropped = workers.run_blocks(calls, 2)
        kept.append(ClusterTable.of(dropped, 0, table.empty))
        quarantine_results += dropped
    quarantine = _table(quarantine_results, 1, nodes.QUARANTINE_COLUMNS)
    described = [line for result in quarantine_results for line in result.small]
    report = {
        "ngram": config.ngram,
        "fields": list(params["leakage"]["fields"]),
        "leaked_validation_examples": sorted(str(ids[i]) for i in leaked),
        "removed_training_rows": len(quarantine),
    }
    if len(quarantine) and params["leakage"]["action"] == "fail":
        shown = "\n".join(described[:20])
        raise nodes.IngestError(f"Validation examples leaked into training data:\n{shown}")
    if len(quarantine):
        logger.warning(
            "%d validation examples leaked into %d training rows; those rows were removed",
            len(leaked),
            len(quarantine),
        )
    return (*kept, quarantine, report)


def _leaks_block(
    block: pd.DataFrame, kind: str, probes: list[str], config: near_duplicates.LeakageConfig
) -> tuple:
    found = near_duplicates.leaked_ngrams_indexes(
        {kind: records.record_texts(kind, block)}, probes, config
    )
    return (found[kind],)


def _drop_leaks(block: pd.DataFrame, kind: str, leaking: dict[int, str], ngram: int) -> tuple:
    kept, entries = nodes.without_leaks(block, kind, leaking, ngram)
    described = [f"{q['source']}:{q['line']}: {q['detail']}" for q in entries[:20]]
    return described, kept, nodes._frame(entries, nodes.QUARANTINE_COLUMNS)


# --- quarantine, accounting, report ---------------------------------------------------------


def gather_quarantine(
    quarantines: list[ClusterTable], config: pii.PiiConfig, workers: RayWorkers
) -> ClusterTable:
    """``nodes.gather_quarantine``: each block redacted where it is, then sorted by file and
    line through partitions of files: each block is cut at the same file boundaries, and each
    partition's pieces, taken in the blocks' order, are sorted stably where they meet."""
    blocks = [block for table in quarantines for block in table.blocks]
    redacted = workers.run_blocks(
        [(_redact_quarantine_block, block, config) for block in blocks], 1
    )
    per_source: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for result in redacted:
        per_source.update(result.small[0])
        rules.update(result.small[1])
    for rule, count in sorted(rules.items(), key=lambda item: -item[1]):
        logger.warning("Quarantined %d rows: %s", count, rule)
    bounds = _bounds(per_source, workers.parts)
    pieces = workers.run_blocks(
        [(_cut_by_source, r.tables[0], bounds) for r in redacted], len(bounds) + 1
    )
    merged = workers.run_blocks(
        [(_sorted_rows, *(p.tables[j] for p in pieces)) for j in range(len(bounds) + 1)],
        1,
    )
    return _table(merged, 0, nodes.QUARANTINE_COLUMNS)


def _redact_quarantine_block(block: pd.DataFrame, config: pii.PiiConfig) -> tuple:
    counts = (
        report.counts_by(block, "source"),
        report.counts_by(block, "rule"),
    )
    return counts, nodes.redacted_quarantine(block, config)


def _bounds(per_source: Counter[str], parts: int) -> list[str]:
    """Files at which to cut the rows, sorted by file, into about ``parts`` even partitions:
    partition ``j`` holds the files before bound ``j`` and from bound ``j - 1``."""
    sources = sorted(per_source)
    total = sum(per_source.values())
    bounds, running = [], 0
    for source in sources:
        if running >= (len(bounds) + 1) * total / parts:
            bounds.append(source)
        running += per_source[source]
    return bounds


def _cut_by_source(block: pd.DataFrame, bounds: list[str]) -> tuple:
    part = np.searchsorted(np.array(bounds, dtype=object), block["source"].to_numpy(), "right")
    return (None, *(block[part == j] for j in range(len(bounds) + 1)))


def _sorted_rows(*pieces: pd.DataFrame) -> tuple:
    rows = pd.concat(pieces, ignore_index=True)
    return None, rows.sort_values(["source", "line"], kind="stable").reset_index(drop=True)


def rows_per_source(outputs: list[Any], quarantine: Any) -> tuple[pd.Series, pd.Series]:
    """For ``nodes.account_for_every_row``: per file, its distinct rows in the outputs (a row in
    two outputs counts once: the (file, line) pairs are grouped by file across the cluster) and
    its rows in the quarantine."""
    workers = ray_engine.connected()
    blocks = [block for table in outputs for block in table.blocks]
    cut = workers.run_blocks([(_pairs_by_source, b, workers.parts) for b in blocks], workers.parts)
    out: Counter[str] = Counter()
    for counts in workers.grouped(cut, _distinct_per_source):
        out.update(counts)
    refused: Counter[str] = Counter()
    if isinstance(quarantine, ClusterTable):
        for result in workers.run_blocks([(_per_source, block) for block in quarantine.blocks], 0):
            refused.update(result.small)
    return pd.Series(out, dtype=int), pd.Series(refused, dtype=int)


def _pairs_by_source(block: pd.DataFrame, parts: int) -> tuple:
    pairs = block[["source", "line"]]
    part = np.array([zlib.crc32(source.encode()) % parts for source in pairs["source"]])
    return (None, *(pairs[part == j] for j in range(parts)))


def _distinct_per_source(pairs: pd.DataFrame) -> dict[str, int]:
    return report.counts_by(pairs.drop_duplicates(), "source")


def _per_source(block: pd.DataFrame) -> tuple:
    return (report.counts_by(block, "source"),)


def data_report(
    quarantine: Any, accounting: pd.DataFrame, hygiene: dict, outputs: dict[str, ClusterTable]
) -> tuple[dict, pd.DataFrame]:
    """``nodes.build_data_report``'s summary and histogram from counts made block by block."""
    workers = ray_engine.connected()
    by_kind = {
        "documents": ["documents_train", "documents_validation"],
        "conversations": ["conversations_train", "conversations_validation"],
        "preferences": ["preferences_train", "preferences_validation"],
        "validation": ["validation_set"],
    }
    kinds, histograms = {}, {}
    for kind, names in by_kind.items():
        blocks = [block for name in names for block in outputs[name].blocks]
        results = workers.run_blocks([(_counts_block, b, kind) for b in blocks], 0)
        rows, sources, categories = 0, Counter(), Counter()
        histogram = np.zeros(len(report.LENGTH_BINS) - 1, dtype=np.int64)
        for result in results:
            counts, lengths = result.small
            rows += counts["rows"]
            sources.update(counts["by_source"])
            categories.update(counts["by_category"])
            histogram += lengths
        kinds[kind] = {
            "rows": rows,
            "by_source": dict(sorted(sources.items())),
            "by_category": dict(sorted(categories.items())),
        }
        histograms[kind] = histogram
    by_rule: Counter[str] = Counter()
    refused: list[dict] = []
    if isinstance(quarantine, ClusterTable):
        for result in workers.run_blocks(
            [(_quarantine_block_counts, b) for b in quarantine.blocks], 0
        ):
            by_rule.update(result.small[0])
            refused += result.small[1]
    files_by_rule = Counter(entry["rule"] for entry in refused)
    quarantined = {
        "by_rule": dict(sorted(by_rule.items())),
        "files_not_opened": {
            "count": len(refused),
            "by_rule": dict(sorted(files_by_rule.items())),
            "files": refused,
        },
    }
    summary = report.summary_of(kinds, quarantined, accounting, hygiene)
    return summary, report.histogram_table(histograms)


def _counts_block(block: pd.DataFrame, kind: str) -> tuple:
    counts = report.kind_counts(block)
    counts = {
        "rows": counts["rows"],
        "by_source": {str(k): int(n) for k, n in counts["by_source"].items()},
        "by_category": {str(k): int(n) for k, n in counts["by_category"].items()},
    }
    return ((counts, report.length_counts(kind, block)),)


def _quarantine_block_counts(block: pd.DataFrame) -> tuple:
    rules = report.counts_by(block, "rule")
    refused = block[block["rule"].isin(raw_files.REFUSAL_RULES)]
    files = [
        {"source": row.source, "rule": row.rule, "detail": row.detail}
        for row in refused.itertuples()
    ]
    return ((rules, files),)
