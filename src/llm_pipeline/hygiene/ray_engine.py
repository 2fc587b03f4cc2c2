"""The Ray engine of ingest (``ingest.engine: ray``): the same record-level functions, on a cluster.

Nothing here is a second implementation of a rule. Three kinds of work differ from the local
engine, and only in where they run:

- **Tables.** A ``ClusterTable`` is a table kept on the cluster as pandas blocks in the object
  stores of the nodes that made them; the process that holds it has only references and
  lengths. ``RayWorkers.run_blocks`` runs a function per block as Ray tasks: the blocks reach
  their tasks without passing through the caller, the tables a task makes stay where it ran, and
  only its small value (counts, indices, the first quarantine entries) comes back. The ingest
  nodes' ray path (``pipelines/ingest/cluster.py``) is made of these.
- **Maps** of tables held by the caller: ``RayWorkers.map_in_order`` is
  ``parallel.map_in_order`` on Ray tasks, each sent only its chunk of the input.
- **Grouping.** The steps that need every row of a kind at once are group-bys, hash-partitioned
  across the cluster by Ray tasks (``RayWorkers.grouped``): each table is cut into a piece per
  partition where it is, and one task per partition gathers its pieces and groups them with
  vectorised pandas. Exact duplicates group by content id; near duplicates by LSH bucket (band
  number and the band's key), so the index lives partitioned by bucket on the workers; the
  buckets' connected components are then found from (row, bucket) pairs of integers, and each
  component is resolved by ``near_duplicates.near_duplicates_among`` in a group-by over
  components. Rows of different components never share a bucket, and a component keeps its
  rows' order, so the greedy "earliest kept copy" choice of the local engine gives the same
  answer component by component. (Ray Data's group-by did this before: at 101 MB in blocks of
  a file, 1.3 MB, the node that finds duplicates took 20 s with it and 6 s with these, 2 cores.)

``connect`` calls ``ray.init(address)``: ``None`` is the cluster ``RAY_ADDRESS`` names, else one
``ray start`` began on this machine, else Ray started here; ``"auto"``, ``"<head>:6379"`` or
``"ray://<head>:10001"`` joins a running cluster. The cluster's nodes
need this package installed and the raw folder at the same path (a shared file system): the
workers read the files themselves, through the same guard that refuses anything outside it.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from llm_pipeline.hygiene import near_duplicates

logger = logging.getLogger(__name__)


class RayConfig(BaseModel):
    """``ingest.ray``: which Ray cluster the ``ray`` engine runs on."""

    model_config = ConfigDict(extra="forbid")

    # None: as ray.init() (RAY_ADDRESS, a `ray start` cluster here, else Ray started here).
    address: str | None


class RayWorkers:
    """Where the ``ray`` engine's work runs; passed wherever a worker count would be."""

    def __init__(self, config: RayConfig):
        import ray

        if not ray.is_initialized():
            ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Rows are grouped by partition (a hash of the group key modulo this): each table is cut
        # into that many pieces where it is, and one task per partition finds the groups of its
        # pieces with vectorised pandas.
        self.parts = 2 * self.cpus
        # The Ray node ids that ran this engine's map tasks: a test checks the work spread.
        self.nodes_used: set[str] = set()
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        logger.info(
            "Ingest runs on Ray: %d CPUs on %d nodes (cluster %s)",
            self.cpus,
            len(nodes),
            ray.get_runtime_context().gcs_address,
        )

    def map_in_order(
        self,
        function: Callable[[Any, Any], Any],
        tasks: list[Any],
        weights: list[float],
        shared: Any,
        bar: Any,
        part: Callable[[Any, Any], tuple[Any, Any]] | None,
    ) -> list[Any]:
        """``parallel.map_in_order``'s work as Ray tasks, results in input order; ``bar``
        advances by each task's weight as it finishes.

        With ``part``, each task is sent only its piece of ``shared``, and at most a few tasks
        per CPU are in flight: the object store holds a few chunks, not the corpus, and each
        text crosses the network once. Without, every task reads all of ``shared``, put into
        the object store once.
        """
        import ray

        whole = ray.put(shared) if part is None else None
        waiting = iter(enumerate(tasks))
        pending: dict[Any, int] = {}
        results: list[Any] = [None] * len(tasks)
        while True:
            for index, task in itertools.islice(waiting, 4 * self.cpus - len(pending)):
                piece, own_task = (whole, task) if part is None else part(shared, task)
                pending[_remote_task().remote(function, piece, own_task)] = index
            if not pending:
                return results
            # Whatever finished within half a second: one call per wait, not per task.
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
            for ref in done:
                index = pending.pop(ref)
                node, results[index] = ray.get(ref)
                self.nodes_used.add(node)
                bar.update(weights[index])

    def first_of_each_id(self, ids: dict[str, Sequence[str]]) -> dict[str, dict[int, int]]:
        """Per kind, ``{index: index of the first row with the same id}`` for every row that
        repeats an earlier one: one group-by on (kind, id) for all kinds."""
        table = pd.concat(
            [
                pd.DataFrame(
                    {"kind": kind, "id": list(kind_ids), "index": np.arange(len(kind_ids))}
                )
                for kind, kind_ids in ids.items()
            ],
            ignore_index=True,
        )
        repeats: dict[str, dict[int, int]] = {kind: {} for kind in ids}
        if len(table) < 2:
            return repeats
        import ray

        found = self.repeated_ids([ray.put(block) for block in _blocks(table, self.cpus)])
        for kind, index, first in zip(found["kind"], found["index"], found["first"], strict=True):
            repeats[kind][int(index)] = int(first)
        return repeats

    def near_duplicates_among(
        self,
        tables: dict[str, tuple[np.ndarray, np.ndarray]],
        config: near_duplicates.NearDuplicateConfig,
    ) -> dict[str, list[near_duplicates.NearDuplicate]]:
        """Per kind, ``near_duplicates.near_duplicates_among`` of its (signatures, has
        shingles): the LSH index partitioned by bucket across the cluster, each connected
        component of shared buckets resolved on its own; one pass for all kinds.

        Rows are numbered across kinds (a kind's rows follow the previous kind's), and a bucket
        is a kind's, so that no component mixes kinds."""
        import ray

        kinds = list(tables)
        offsets = np.cumsum([0, *(len(signatures) for signatures, _ in tables.values())])
        found_by_kind: dict[str, list[near_duplicates.NearDuplicate]] = {k: [] for k in kinds}
        present = [
            (code, offsets[code] + np.flatnonzero(has_shingles), signatures[has_shingles])
            for code, (signatures, has_shingles) in enumerate(tables.values())
        ]
        if sum(len(rows) for _, rows, _ in present) < 2:
            return found_by_kind
        rows_table = pd.DataFrame(
            {
                "kind": np.concatenate([np.full(len(r), c) for c, r, _ in present]),
                "index": np.concatenate([r for _, r, _ in present]).astype(np.int64),
                "signature": list(np.concatenate([s for _, _, s in present])),
            }
        )
        found = self.near_duplicate_rows(
            [ray.put(block) for block in _blocks(rows_table, self.cpus)], config
        )
        for index, kept, similarity in sorted(
            zip(found["index"], found["kept"], found["similarity"], strict=True)
        ):
            code = int(np.searchsorted(offsets, index, side="right")) - 1
            found_by_kind[kinds[code]].append(
                near_duplicates.NearDuplicate(
                    int(index - offsets[code]), int(kept - offsets[code]), float(similarity)
                )
            )
        return found_by_kind

    def near_duplicate_rows(
        self, rows: list[Any], config: near_duplicates.NearDuplicateConfig
    ) -> pd.DataFrame:
        """(index, kept, similarity) of every near duplicate among the rows of the tables
        ``rows`` refers to (columns kind, index, signature; indices unique and ascending from
        one table to the next, rows with shingles only), found by group-bys on the cluster: only
        integers come back here, never a signature or a text."""
        import ray

        columns = ["index", "kept", "similarity"]
        if not rows:
            return pd.DataFrame(columns=columns)
        bands, band_rows = near_duplicates.lsh_bands(config)
        cut = [(_bucket_pieces, block, bands, band_rows, config.seed, self.parts) for block in rows]
        memberships = self.grouped(self.run_blocks(cut, self.parts), _shared_bucket_members)
        if not memberships:
            return pd.DataFrame(columns=columns)
        members, components = _connected_components(pd.concat(memberships, ignore_index=True))
        shared = ray.put((members, components))
        cut = [(_component_rows, shared, block, self.parts) for block in rows]
        found = self.grouped(self.run_blocks(cut, self.parts), _resolve_components, config)
        found = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=columns)
        logger.info(
            "%d near-duplicates (%d rows in %d components of shared LSH buckets)",
            len(found),
            len(members),
            len(np.unique(components)),
        )
        return found

    def repeated_ids(self, ids: list[Any]) -> pd.DataFrame:
        """(kind, index, first) of every row of the tables ``ids`` refers to (columns kind, id,
        index) whose id an earlier row of its kind had: one group-by on the cluster."""
        cut = [(_id_pieces, block, self.parts) for block in ids]
        found = self.grouped(self.run_blocks(cut, self.parts), _repeats_of_first)
        if not found:
            return pd.DataFrame(columns=["kind", "index", "first"])
        return pd.concat(found, ignore_index=True)

    def run_blocks(self, calls: list[tuple], tables: int) -> list[BlockResult]:
        """``function(*args)`` for every call ``(function, *args)``, as Ray tasks, results in
        call order.

        ``function`` returns a small value and ``tables`` tables: the small value comes back
        here, the tables stay in the object store of the node that made them, and only their
        references, lengths and (empty) columns come back. References among a call's
        arguments are resolved where the task runs, so a table reaches its task without
        passing through this process."""
        import ray

        remote = _remote_blocks(tables)
        pending = [remote.remote(*call) for call in calls]
        if not pending:
            return []
        heads = ray.get([refs[0] if tables else refs for refs in pending])
        results = []
        for refs, (node, small, shapes) in zip(pending, heads, strict=True):
            self.nodes_used.add(node)
            results.append(
                BlockResult(
                    small,
                    list(refs[1:]) if tables else [],
                    [length for length, _ in shapes],
                    [empty for _, empty in shapes],
                )
            )
        return results

    def put(self, value: Any) -> Any:
        """``value`` in the object store once, for every task that reads it."""
        import ray

        return ray.put(value)

    def keys_counted_at_least(self, counts: list[Any], minimum: int) -> np.ndarray:
        """The keys whose counts, added up over the tables ``counts`` refers to (columns key,
        a non-negative integer, and count), reach ``minimum``: a group-by on the cluster."""
        cut = [(_key_pieces, block, self.parts) for block in counts]
        found = self.grouped(self.run_blocks(cut, self.parts), _keys_at_least, minimum)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def grouped(self, cut: list[BlockResult], function: Callable, *args: Any) -> list[Any]:
        """``function(rows, *args)`` of each partition: ``cut`` holds every table cut into
        ``self.parts`` pieces (piece ``j`` holding the rows of partition ``j``); one task per
        partition gathers its pieces from wherever they are and hands back what ``function``
        found there (empty results left out). The shuffle of a group-by, on Ray tasks."""
        calls = []
        for j in range(self.parts):
            pieces = [result.tables[j] for result in cut if result.lengths[j]]
            if pieces:
                calls.append((_on_partition, function, args, *pieces))
        found = [result.small for result in self.run_blocks(calls, 0)]
        return [value for value in found if len(value)]


class BlockResult(NamedTuple):
    """What one task of ``RayWorkers.run_blocks`` gave: its small value here, its tables'
    references, lengths and empty copies (their columns and types)."""

    small: Any
    tables: list[Any]
    lengths: list[int | None]
    empties: list[pd.DataFrame | None]


class ClusterTable:
    """A table kept on the Ray cluster as pandas blocks, in order: this process holds their
    references and lengths, never the rows. What the ``ray`` engine's ingest nodes hand to each
    other, and what ``JSONLinesDataset`` writes block by block.

    Blocks are never changed after they are made, so a copy is the same table (Kedro copies what
    a memory dataset hands out)."""

    def __init__(self, blocks: list[Any], lengths: list[int], empty: pd.DataFrame):
        kept = [(block, int(n)) for block, n in zip(blocks, lengths, strict=True) if n]
        self.blocks = [block for block, _ in kept]
        self.lengths = [n for _, n in kept]
        self.empty = empty.iloc[:0]

    @classmethod
    def of(cls, results: list[BlockResult], table: int, empty: pd.DataFrame) -> ClusterTable:
        """Table number ``table`` of each of ``results``, one after another; ``empty`` gives
        the columns when there are no rows."""
        made = [result.empties[table] for result in results if result.lengths[table]]
        return cls(
            [result.tables[table] for result in results],
            [result.lengths[table] for result in results],
            made[0] if made else empty,
        )

    def __len__(self) -> int:
        return sum(self.lengths)

    def __deepcopy__(self, memo: dict) -> ClusterTable:
        return self

    @property
    def offsets(self) -> list[int]:
        """The index of each block's first row in the whole table."""
        return [int(n) for n in np.cumsum([0, *self.lengths[:-1]])] if self.blocks else []

    def to_pandas(self) -> pd.DataFrame:
        """The whole table in this process: for tests and small tables only."""
        import ray

        frames = ray.get(self.blocks)
        return pd.concat(frames, ignore_index=True) if frames else self.empty.copy()

    def each_block(self, function: Callable[[pd.DataFrame], Any], ahead: int = 4) -> Iterator:
        """``function(block)`` of every block, computed where the block is, handed over here
        in order with at most ``ahead`` computed and not yet handed over."""
        import ray

        remote = _remote_apply()
        pending: collections.deque = collections.deque()
        for block in self.blocks:
            pending.append(remote.remote(function, block))
            if len(pending) > ahead:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())


_connected: dict[str | None, RayWorkers] = {}


def connect(config: dict | RayConfig) -> RayWorkers:
    """The ``ray`` engine on the cluster ``config`` names (Ray started here when it names none),
    one per process and address while Ray stays up: every node of a run shares it."""
    import ray

    config = RayConfig.model_validate(config)
    workers = _connected.get(config.address)
    if workers is None or not ray.is_initialized():
        _connected.clear()
        workers = _connected[config.address] = RayWorkers(config)
    return workers


def connected() -> RayWorkers:
    """The engine this process connected to last: the one a ``ClusterTable``'s blocks are on."""
    if not _connected:
        raise RuntimeError("No Ray cluster is connected in this process (ingest.engine: ray).")
    return next(iter(_connected.values()))


# --- what runs on the workers --------------------------------------------------------------


def _task(function: Callable[[Any, Any], Any], piece: Any, task: Any) -> tuple[str, Any]:
    """The node that ran ``function(piece, task)``, and its result (a reference as ``piece`` is
    fetched by Ray before the call)."""
    import ray

    return ray.get_runtime_context().get_node_id(), function(piece, task)


def _blocks_task(function: Callable[..., tuple], *args: Any) -> tuple:
    """``function(*args)``'s small value with the node that ran it and its tables' lengths and
    empty copies, followed by the tables themselves."""
    import ray

    small, *tables = function(*args)
    shapes = [
        (len(table), table.iloc[:0]) if isinstance(table, pd.DataFrame) else (None, None)
        for table in tables
    ]
    head = (ray.get_runtime_context().get_node_id(), small, shapes)
    return (head, *tables) if tables else head


@functools.cache
def _remote_blocks(tables: int) -> Any:
    """``_blocks_task`` as a Ray remote function with one return per table and one for the rest."""
    import ray

    return ray.remote(num_returns=tables + 1)(_blocks_task)


def _apply(function: Callable[[pd.DataFrame], Any], block: pd.DataFrame) -> Any:
    return function(block)


@functools.cache
def _remote_apply() -> Any:
    import ray

    return ray.remote(_apply)


def _component_rows(shared: tuple[np.ndarray, np.ndarray], rows: pd.DataFrame, parts: int) -> tuple:
    """The rows of ``rows`` that share a bucket with another (``shared``: those rows' indices,
    ascending, and their components), cut by component: a component's rows meet in one
    partition."""
    members, components = shared
    indices = rows["index"].to_numpy()
    position = np.minimum(np.searchsorted(members, indices), max(len(members) - 1, 0))
    member = members[position] == indices if len(members) else np.zeros(len(rows), dtype=bool)
    table = pd.DataFrame(
        {
            "kind": rows["kind"].to_numpy()[member],
            "index": indices[member],
            "signature": list(rows["signature"].to_numpy()[member]),
        }
    )
    return _pieces(table, components[position[member]] % parts, parts)


@functools.cache
def _remote_task() -> Any:
    """``_task`` as a Ray remote function, made on first use: importing this module needs no Ray."""
    import ray

    return ray.remote(_task)


def _blocks(table: pd.DataFrame, cpus: int) -> list[pd.DataFrame]:
    """``table`` cut into about two blocks per CPU, so that every worker gets a share."""
    pieces = max(1, min(len(table), 2 * cpus))
    bounds = np.linspace(0, len(table), pieces + 1).astype(int)
    return [table.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _on_partition(function: Callable, args: tuple, *pieces: pd.DataFrame) -> tuple:
    """``function`` of a partition's rows, gathered from its pieces in the tables' order."""
    return (function(pd.concat(pieces, ignore_index=True), *args),)


def _pieces(table: pd.DataFrame, part: np.ndarray, parts: int) -> tuple:
    """``table`` cut by ``part`` (each row's partition) into ``parts`` pieces."""
    return (None, *(table[part == j].reset_index(drop=True) for j in range(parts)))


def _id_pieces(ids: pd.DataFrame, parts: int) -> tuple:
    """(kind, id, index) rows cut by a stable hash of (kind, id), the same in every process."""
    part = np.array(
        [
            zlib.crc32(f"{kind}\x1f{row_id}".encode()) % parts
            for kind, row_id in zip(ids["kind"], ids["id"], strict=True)
        ],
        dtype=np.int64,
    )
    return _pieces(ids, part, parts)


def _key_pieces(counts: pd.DataFrame, parts: int) -> tuple:
    """(key, count) rows cut by their key (a non-negative integer)."""
    return _pieces(counts, counts["key"].to_numpy() % parts, parts)


def _keys_at_least(part: pd.DataFrame, minimum: int) -> np.ndarray:
    totals = part.groupby("key")["count"].sum()
    return totals.index[totals >= minimum].to_numpy(dtype=np.int64)


def _repeats_of_first(part: pd.DataFrame) -> pd.DataFrame:
    """Rows of the partition's ids after the first of each: each with the index of that first."""
    first = part.groupby(["kind", "id"])["index"].transform("min")
    repeats = part["index"] != first
    return pd.DataFrame(
        {"kind": part["kind"][repeats], "index": part["index"][repeats], "first": first[repeats]}
    )


def _bucket_pieces(rows: pd.DataFrame, bands: int, band_rows: int, seed: int, parts: int) -> tuple:
    """(kind, band, key, index) of every band of every row, cut by bucket: the LSH bucket of a
    row in a band is the band's number and ``near_duplicates.band_keys`` of its part of the
    signature."""
    signatures = np.stack(rows["signature"].to_numpy())
    indices = rows["index"].to_numpy()
    band = np.repeat(np.arange(bands, dtype=np.int64), len(indices))
    key = np.concatenate(
        [near_duplicates.band_keys(signatures, b, band_rows, seed) for b in range(bands)]
    )
    part = (((key >> np.uint64(1)) % np.uint64(parts)).astype(np.int64) + band) % parts
    table = pd.DataFrame(
        {
            "kind": np.tile(rows["kind"].to_numpy(), bands),
            "band": band,
            "key": key,
            "index": np.tile(indices, bands),
        }
    )
    return _pieces(table, part, parts)


def _shared_bucket_members(part: pd.DataFrame) -> pd.DataFrame:
    """The members of the partition's LSH buckets that hold two or more rows."""
    size = part.groupby(["kind", "band", "key"])["index"].transform("size")
    return part[size > 1]


def _connected_components(memberships: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``memberships`` (kind, band, key, index), ascending, and the component of
    each: rows are joined when they share a bucket. A graph of integers on the driver (rows and
    buckets as nodes, a membership as an edge; scipy's C), never text."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, row_node = np.unique(memberships["index"].to_numpy(), return_inverse=True)
    bucket = memberships.groupby(["kind", "band", "key"], sort=False).ngroup().to_numpy()
    nodes = len(rows) + int(bucket.max()) + 1
    graph = coo_matrix(
        (np.ones(len(row_node), dtype=np.int8), (row_node, len(rows) + bucket)),
        shape=(nodes, nodes),
    )
    _, labels = connected_components(graph, directed=False)
    return rows, labels[: len(rows)].astype(np.int64)


def _resolve_components(
    part: pd.DataFrame, config: near_duplicates.NearDuplicateConfig
) -> pd.DataFrame:
    """The local engine's greedy choice within the partition's components, rows in their order.

    One call per kind for all of them: rows of different components of a kind share no bucket,
    so nothing the greedy pass does in one component depends on another (rows of two kinds may
    share buckets, and are never compared)."""
    found = []
    for _, rows in part.groupby("kind", sort=False):
        rows = rows.sort_values("index")
        indices = rows["index"].to_numpy()
        for d in near_duplicates.near_duplicates_among(
            np.stack(rows["signature"].to_numpy()), np.ones(len(indices), dtype=bool), config
        ):
            found.append((indices[d.index], indices[d.kept_index], d.similarity))
    return pd.DataFrame(found, columns=["index", "kept", "similarity"])
