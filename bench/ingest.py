"""Ingest throughput: the whole ingest pipeline (read, clean, PII, exact and near duplicates,
split, leakage, accounting, report) against reading and hashing the same files, in one run.

    .venv/bin/python bench/ingest.py [--megabytes 100] [--workers auto|N]

Prints MB/s of both, the time for 4x less data to show scaling, the CPU seconds of ingest (this
process and its workers: other jobs on a shared machine change them far less than the wall clock,
and the load average says how shared it was), and as its last line the ratio of ingest
throughput to the read-and-hash baseline (goal: at least 0.01).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import write_corpus

PARAMS_FILE = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_ingest.yml"


def read_and_hash(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """User and system time of this process and of its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run_ingest(root: Path, workers: str) -> tuple[float, float]:
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from llm_pipeline.datasets import RawFolderDataset
    from llm_pipeline.pipelines.ingest import create_pipeline

    params = yaml.safe_load(PARAMS_FILE.read_text())["ingest"]
    if workers:
        params["workers"] = workers if workers == "auto" else int(workers)
    datasets = {
        f"raw_{kind}": RawFolderDataset(str(root / kind))
        for kind in ("documents", "conversations", "preferences", "validation")
    }
    datasets["params:ingest"] = MemoryDataset(params)
    catalog = DataCatalog(datasets=datasets)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    SequentialRunner().run(create_pipeline(), catalog)
    return time.perf_counter() - start, cpu_seconds() - cpu_start


def measure(megabytes: float, workers: str) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        size = write_corpus(root, megabytes)
        baseline = min(read_and_hash(root) for _ in range(3))
        ingest, cpu = run_ingest(root, workers)
    return baseline, ingest, cpu, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--workers", default="", help="override ingest.workers (auto or N)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    load = os.getloadavg()[0]
    _, small_ingest, _, small_size = measure(args.megabytes / 4, args.workers)
    baseline, ingest, cpu, size = measure(args.megabytes, args.workers)
    mb = size / 1e6
    print(f"corpus: {mb:.1f} MB, workers: {args.workers or 'as in parameters_ingest.yml'}")
    print(f"read + sha256: {mb / baseline:.1f} MB/s")
    print(f"ingest: {mb / ingest:.1f} MB/s ({ingest:.1f} s)")
    print(f"ingest CPU: {cpu:.1f} s, {mb / cpu:.1f} MB per CPU second")
    after = os.getloadavg()[0]
    print(f"load average before / after: {load:.2f} / {after:.2f} on {os.cpu_count()} cores")
    print(f"ingest of {small_size / 1e6:.1f} MB: {small_ingest:.1f} s")
    print(f"4x the data took {ingest / small_ingest:.2f}x the time (goal: at most 4.5x)")
    print(f"ratio to read-and-hash: {baseline / ingest:.4f}")


if __name__ == "__main__":
    main()
