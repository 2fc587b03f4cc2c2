"""Ingest throughput: the whole ingest pipeline (read, clean, PII, exact and near duplicates,
split, leakage, accounting, report) against reading and hashing the same files, in one run.

    .venv/bin/python bench/ingest.py [--megabytes 100] [--workers auto|N] [--engine local|ray]

Prints MB/s of both, the time for 4x less data to show scaling, the CPU seconds of ingest (this
process and its workers: other jobs on a shared machine change them far less than the wall clock,
and the load average says how shared it was), and as its last line the ratio of ingest
throughput to the read-and-hash baseline (goal: at least 0.01).

With ``--engine ray`` the same corpora also go through the ``ray`` engine, on Ray started on
this machine before the clock starts (as a cluster would be running already); the last line is
then the ratio of its throughput to the local engine's (goal: at least 0.7 on 2 cores), and the
4x-data line is the ray engine's (goal: at most 4.5x).
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

from llm_pipeline.hygiene import ray_engine

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


def run_ingest(root: Path, workers: str, engine: str = "local") -> tuple[float, float]:
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from llm_pipeline.datasets import RawFolderDataset
    from llm_pipeline.pipelines.ingest import create_pipeline

    params = yaml.safe_load(PARAMS_FILE.read_text())["ingest"]
    if workers:
        params["workers"] = workers if workers == "auto" else int(workers)
    params["engine"] = engine
    datasets = {
        f"raw_{kind}": RawFolderDataset(str(root / kind))
        for kind in ("documents", "conversations", "preferences", "validation")
    }
    datasets["params:ingest"] = MemoryDataset(params)
    catalog = DataCatalog(datasets=datasets)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    SequentialRunner().run(create_pipeline(), catalog)
    return time.perf_counter() - start, cpu_seconds() - cpu_start


def measure(megabytes: float, workers: str, engine: str) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        size = write_corpus(root, megabytes)
        baseline = min(read_and_hash(root) for _ in range(3))
        ingest, cpu = run_ingest(root, workers, engine)
    return baseline, ingest, cpu, size


def compare_engines(megabytes: float, workers: str) -> None:
    """Both engines on the same corpora, Ray already up (its start is printed, not timed)."""
    start = time.perf_counter()
    ray_engine.connect({"address": None})
    print(f"Ray started in {time.perf_counter() - start:.1f} s (not counted below)")
    times = {}
    for scale in (0.25, 1.0):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            size = write_corpus(root, megabytes * scale)
            for engine in ("local", "ray"):
                times[engine, scale] = run_ingest(root, workers, engine)[0]
        mb = size / 1e6
        for engine in ("local", "ray"):
            print(
                f"{mb:6.1f} MB, {engine:5}: {mb / times[engine, scale]:.1f} MB/s "
                f"({times[engine, scale]:.1f} s)"
            )
    print(
        f"ray engine: 4x the data took {times['ray', 1.0] / times['ray', 0.25]:.2f}x the time "
        "(goal: at most 4.5x)"
    )
    print(f"ratio of ray to local throughput: {times['local', 1.0] / times['ray', 1.0]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--workers", default="", help="override ingest.workers (auto or N)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    load = os.getloadavg()[0]
    if args.engine == "ray":
        compare_engines(args.megabytes, args.workers)
        after = os.getloadavg()[0]
        print(f"load average before / after: {load:.2f} / {after:.2f} on {os.cpu_count()} cores")
        return
    _, small_ingest, _, small_size = measure(args.megabytes / 4, args.workers, "local")
    baseline, ingest, cpu, size = measure(args.megabytes, args.workers, "local")
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
