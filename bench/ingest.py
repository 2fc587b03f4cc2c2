"""Ingest throughput: the whole ingest pipeline (read, clean, PII, exact and near duplicates,
split, leakage, accounting, report) against reading and hashing the same files, in one run.

    .venv/bin/python bench/ingest.py [--megabytes 100]

Prints MB/s of both, the time for 4x less data to show scaling, and as its last line the ratio
of ingest throughput to the read-and-hash baseline (goal: at least 0.01).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
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


def run_ingest(root: Path) -> float:
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from llm_pipeline.datasets import RawFolderDataset
    from llm_pipeline.pipelines.ingest import create_pipeline

    params = yaml.safe_load(PARAMS_FILE.read_text())["ingest"]
    datasets = {
        f"raw_{kind}": RawFolderDataset(str(root / kind))
        for kind in ("documents", "conversations", "preferences", "validation")
    }
    datasets["params:ingest"] = MemoryDataset(params)
    catalog = DataCatalog(datasets=datasets)
    start = time.perf_counter()
    SequentialRunner().run(create_pipeline(), catalog)
    return time.perf_counter() - start


def measure(megabytes: float) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        size = write_corpus(root, megabytes)
        baseline = min(read_and_hash(root) for _ in range(3))
        ingest = run_ingest(root)
    return baseline, ingest, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    _, small_ingest, small_size = measure(args.megabytes / 4)
    baseline, ingest, size = measure(args.megabytes)
    mb = size / 1e6
    print(f"corpus: {mb:.1f} MB")
    print(f"read + sha256: {mb / baseline:.1f} MB/s")
    print(f"ingest: {mb / ingest:.1f} MB/s ({ingest:.1f} s)")
    print(f"ingest of {small_size / 1e6:.1f} MB: {small_ingest:.1f} s")
    print(f"4x the data took {ingest / small_ingest:.2f}x the time (goal: at most 4.5x)")
    print(f"ratio to read-and-hash: {baseline / ingest:.4f}")


if __name__ == "__main__":
    main()
