"""The Ray engine of ingest (``ingest.engine: ray``): the same record-level functions, on a cluster.

Nothing here is a second implementation of a rule. Two kinds of work differ from the local
engine, and only in where they run:

- **Maps.** ``RayWorkers.map_in_order`` is ``parallel.map_in_order`` on Ray tasks: the chunk
  descriptions the nodes build are the tasks, the functions of ``hygiene/`` and of the ingest
  nodes are what each task calls, and each task is sent only the chunk of the input it reads
  (the callers' ``part``), a few tasks per CPU at a time.
- **Grouping.** The steps that need every row of a kind at once are Ray Data group-bys, hash-
  partitioned across the cluster: exact duplicates group by content id; near duplicates group by
  LSH bucket (band number and the band's key), so the index lives partitioned by bucket on the
  workers; the buckets' connected components are then found from (row, bucket) pairs of
  integers, and each component is resolved by ``near_duplicates.near_duplicates_among`` in a
  group-by over components. Rows of different components never share a bucket, and a component
  keeps its rows' order, so the greedy "earliest kept copy" choice of the local engine gives the
  same answer component by component.

``connect`` calls ``ray.init(address)``: ``None`` is the cluster ``RAY_ADDRESS`` names, else one
``ray start`` began on this machine, else Ray started here; ``"auto"``, ``"<head>:6379"`` or
``"ray://<head>:10001"`` joins a running cluster. The cluster's nodes
need this package installed and the raw folder at the same path (a shared file system): the
workers read the files themselves, through the same guard that refuses anything outside it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any

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
        import ray.data
        from ray.data.context import ShuffleStrategy

        if not ray.is_initialized():
            ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
        # Ray Data logs every dataset's plan and progress: one line per group-by is enough noise.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        # The sort-based shuffle starts in a fraction of a second; the default hash shuffle
        # starts aggregator actors, seconds per group-by that a corpus of a few GB never repays.
        context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Rows are grouped by partition (a hash of the group key modulo this), and each
        # partition's groups are found with vectorised pandas in one call: Ray Data's
        # map_groups calls Python once per group, which costs more than the work for LSH buckets.
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
        found = self._grouped(
            self._dataset(table).map_batches(
                _with_id_partition, fn_kwargs={"parts": self.parts}, batch_format="pandas"
            ),
            _repeats_of_first,
            {},
            ["kind", "index", "first"],
        )
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
        kinds = list(tables)
        offsets = np.cumsum([0, *(len(signatures) for signatures, _ in tables.values())])
        found_by_kind: dict[str, list[near_duplicates.NearDuplicate]] = {k: [] for k in kinds}
        present = [
            (code, offsets[code] + np.flatnonzero(has_shingles), signatures[has_shingles])
            for code, (signatures, has_shingles) in enumerate(tables.values())
        ]
        if sum(len(rows) for _, rows, _ in present) < 2:
            return found_by_kind
        signatures = np.concatenate([s for _, _, s in present])
        rows_table = pd.DataFrame(
            {
                "kind": np.concatenate([np.full(len(r), c) for c, r, _ in present]),
                "index": np.concatenate([r for _, r, _ in present]).astype(np.int64),
                "signature": list(signatures),
            }
        )
        bands, rows = near_duplicates.lsh_bands(config)
        memberships = self._grouped(
            self._dataset(rows_table).map_batches(
                _bucket_keys,
                fn_kwargs={"bands": bands, "rows": rows, "seed": config.seed, "parts": self.parts},
                batch_format="pandas",
            ),
            _shared_bucket_members,
            {},
            ["kind", "band", "key", "index"],
        )
        if memberships.empty:
            return found_by_kind
        members, components = _connected_components(memberships)
        # rows_table's indices ascend (kinds one after another, each in order).
        position = np.searchsorted(rows_table["index"].to_numpy(), members)
        component_table = pd.DataFrame(
            {
                "part": components % self.parts,
                "kind": rows_table["kind"].to_numpy()[position],
                "index": members,
                "signature": list(signatures[position]),
            }
        )
        found = self._grouped(
            self._dataset(component_table),
            _resolve_components,
            {"config": config},
            ["index", "kept", "similarity"],
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
        logger.info(
            "%s near-duplicates (%d rows in %d components of shared LSH buckets)",
            {kind: len(found) for kind, found in found_by_kind.items()},
            len(members),
            len(np.unique(components)),
        )
        return found_by_kind

    def _dataset(self, table: pd.DataFrame) -> Any:
        import ray.data

        return ray.data.from_pandas(_blocks(table, self.cpus))

    def _grouped(
        self, dataset: Any, function: Callable, kwargs: dict, columns: list[str]
    ) -> pd.DataFrame:
        """``function`` over all the rows of each partition (column ``part``) of ``dataset``,
        on the cluster; the rows it returns, here."""
        grouped = dataset.groupby("part", num_partitions=self.parts)
        return _collect(
            grouped.map_groups(function, fn_kwargs=kwargs, batch_format="pandas"), columns
        )


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


# --- what runs on the workers --------------------------------------------------------------


def _task(function: Callable[[Any, Any], Any], piece: Any, task: Any) -> tuple[str, Any]:
    """The node that ran ``function(piece, task)``, and its result (a reference as ``piece`` is
    fetched by Ray before the call)."""
    import ray

    return ray.get_runtime_context().get_node_id(), function(piece, task)


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


def _collect(dataset: Any, columns: list[str]) -> pd.DataFrame:
    """The rows of ``dataset`` here, as one table (``columns`` when there are none)."""
    batches = list(dataset.iter_batches(batch_format="pandas", batch_size=None))
    batches = [batch[columns] for batch in batches if len(batch)]
    return pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=columns)


def _with_id_partition(batch: pd.DataFrame, parts: int) -> pd.DataFrame:
    """``batch`` with its rows' partition: a stable hash of the id (the same in every process)."""
    batch = batch.copy()
    batch["part"] = [
        zlib.crc32(f"{kind}\x1f{row_id}".encode()) % parts
        for kind, row_id in zip(batch["kind"], batch["id"], strict=True)
    ]
    return batch


def _repeats_of_first(part: pd.DataFrame) -> pd.DataFrame:
    """Rows of the partition's ids after the first of each: each with the index of that first."""
    first = part.groupby(["kind", "id"])["index"].transform("min")
    repeats = part["index"] != first
    return pd.DataFrame(
        {"kind": part["kind"][repeats], "index": part["index"][repeats], "first": first[repeats]}
    )


def _bucket_keys(batch: pd.DataFrame, bands: int, rows: int, seed: int, parts: int) -> pd.DataFrame:
    """(band, key, index, part) for every band of every row: the LSH bucket of a row in a band is
    the band's number and ``near_duplicates.band_keys`` of its part of the signature."""
    if batch.empty:
        return pd.DataFrame({"kind": [], "band": [], "key": [], "index": [], "part": []})
    signatures = np.stack(batch["signature"].to_numpy())
    indices = batch["index"].to_numpy()
    band = np.repeat(np.arange(bands, dtype=np.int64), len(indices))
    key = np.concatenate(
        [near_duplicates.band_keys(signatures, b, rows, seed) for b in range(bands)]
    )
    part = (((key >> np.uint64(1)) % np.uint64(parts)).astype(np.int64) + band) % parts
    return pd.DataFrame(
        {
            "kind": np.tile(batch["kind"].to_numpy(), bands),
            "band": band,
            "key": key,
            "index": np.tile(indices, bands),
            "part": part,
        }
    )


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
