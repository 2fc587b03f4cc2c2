"""Ingest throughput: the whole ingest pipeline (read, clean, PII, exact and near duplicates,
split, leakage, accounting, report) against reading and hashing the same files, in one run.

    .venv/bin/python bench/ingest.py [--megabytes 100] [--workers auto|N] [--engine local|ray]

Prints MB/s of both, the time for 4x less data to show scaling, the CPU seconds of ingest (this
process and its workers: other jobs on a shared machine change them far less than the wall clock,
and the load average says how shared it was), and as its last line the ratio of ingest
throughput to the read-and-hash baseline (goal: at least 0.01).

With ``--engine ray`` the same corpora go through both engines, each run in a process of its
own, the ``ray`` engine's joining a Ray cluster started on this machine before the clock
starts (as a cluster would be running already); each line says how much the Kedro process's
memory grew during the run, the 4x-data lines say how time and that growth scale (goals for
the ray engine: at most 4.5x the time, memory that does not grow with the data), and the last
line is the ratio of its throughput to the local engine's (goal: at least 0.7 on 2 cores).
Tables are written as JSON Lines by both engines, as the project's catalog writes them.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import socket
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


def run_ingest(
    root: Path, workers: str, engine: str = "local", address: str | None = None
) -> tuple[float, float]:
    """The ingest pipeline over ``root``, its tables written as JSON Lines (as the project's
    catalog writes them) into a folder that is deleted after; seconds and CPU seconds."""
    import yaml
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from llm_pipeline.datasets import JSONLinesDataset, RawFolderDataset
    from llm_pipeline.pipelines.ingest import create_pipeline
    from llm_pipeline.pipelines.ingest.pipeline import SPLITS

    params = yaml.safe_load(PARAMS_FILE.read_text())["ingest"]
    if workers:
        params["workers"] = workers if workers == "auto" else int(workers)
    params["engine"] = engine
    params["ray"] = {"address": address}
    datasets = {
        f"raw_{kind}": RawFolderDataset(str(root / kind))
        for kind in ("documents", "conversations", "preferences", "validation")
    }
    datasets["params:ingest"] = MemoryDataset(params)
    with tempfile.TemporaryDirectory() as written:
        for name in ("quarantine", "ingest_accounting", *(f"ingested_{n}" for n in SPLITS)):
            datasets[name] = JSONLinesDataset(f"{written}/{name}.jsonl")
        catalog = DataCatalog(datasets=datasets)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        SequentialRunner().run(create_pipeline(), catalog)
        return time.perf_counter() - start, cpu_seconds() - cpu_start


def private_megabytes() -> float:
    """This process's own resident memory now (RssAnon: not the shared pages of Ray's object
    store that it maps, which are the store's memory, nor its libraries' code)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1e3
    raise RuntimeError("no RssAnon in /proc/self/status")


def single(
    root: Path, workers: str, engine: str, address: str | None, block_megabytes: float | None
) -> None:
    """One run in this process (started by ``compare_engines``): its seconds and how much its
    private memory grew from before the run to its peak (sampled every 20 ms), as the last
    line."""
    import threading

    import matplotlib.pyplot  # noqa: F401 (imported by the data report: not the data's memory)
    from kedro.runner import SequentialRunner  # noqa: F401

    from llm_pipeline.pipelines.ingest import cluster, create_pipeline  # noqa: F401

    if engine == "ray":
        ray_engine.connect({"address": address})
    if block_megabytes:
        cluster.BLOCK_BYTES = (int(block_megabytes * 1e6),) * 2
    before = private_megabytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], private_megabytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds, _ = run_ingest(root, workers, engine, address)
    done.set()
    sampler.join()
    print(f"{seconds} {max(peak[0], private_megabytes()) - before}")


def measure(megabytes: float, workers: str, engine: str) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        size = write_corpus(root, megabytes)
        baseline = min(read_and_hash(root) for _ in range(3))
        ingest, cpu = run_ingest(root, workers, engine)
    return baseline, ingest, cpu, size


def compare_engines(megabytes: float, workers: str, block_megabytes: float | None) -> None:
    """Both engines on the same corpora, each run in a process of its own; the ray engine's
    runs join a Ray cluster started on this machine before the clock (as one would be running
    already). Beside the time, how much the Kedro process's memory grew during the run."""
    import subprocess

    ray = str(Path(sys.executable).parent / "ray")
    with socket.socket() as probe:  # a free port: 6379, Ray's own, may be another server's
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    start = time.perf_counter()
    subprocess.run(
        [
            *(ray, "start", "--head", "--node-ip-address=127.0.0.1"),
            *(f"--port={address.rsplit(':', 1)[1]}", "--include-dashboard=false"),
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
    )
    print(f"Ray started in {time.perf_counter() - start:.1f} s (not counted below)")
    times, grew = {}, {}
    try:
        for scale in (0.25, 1.0):
            with tempfile.TemporaryDirectory() as folder:
                root = Path(folder)
                size = write_corpus(root, megabytes * scale)
                for engine in ("local", "ray"):
                    command = [sys.executable, __file__, "--single", engine, "--root", folder]
                    # "auto": the cluster started above (an address of 127.0.0.1 is rewritten
                    # by Ray into the host's own address, on which the head does not listen).
                    command += ["--address", "auto"]
                    command += ["--workers", workers] if workers else []
                    if block_megabytes:
                        command += ["--block-megabytes", str(block_megabytes)]
                    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
                    seconds, megabytes_grown = done.stdout.split()[-2:]
                    times[engine, scale] = float(seconds)
                    grew[engine, scale] = float(megabytes_grown)
            mb = size / 1e6
            for engine in ("local", "ray"):
                print(
                    f"{mb:6.1f} MB, {engine:5}: {mb / times[engine, scale]:.1f} MB/s "
                    f"({times[engine, scale]:.1f} s), the Kedro process's own memory grew by "
                    f"{grew[engine, scale]:.0f} MB"
                )
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
    for engine in ("local", "ray"):
        print(
            f"{engine} engine: 4x the data took {times[engine, 1.0] / times[engine, 0.25]:.2f}x "
            f"the time and {grew[engine, 1.0] / max(grew[engine, 0.25], 1):.2f}x the growth of "
            "the Kedro process's memory"
        )
    print("(goals for the ray engine: at most 4.5x the time; memory that does not grow)")
    print(f"ratio of ray to local throughput: {times['local', 1.0] / times['ray', 1.0]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--workers", default="", help="override ingest.workers (auto or N)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--single", choices=("local", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument(
        "--block-megabytes",
        type=float,
        help="the ray engine's blocks, this many MB of raw files each (default: as the "
        "project sizes them, a few per CPU up to 64 MB)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.single:
        single(args.root, args.workers, args.single, args.address, args.block_megabytes)
        return
    load = os.getloadavg()[0]
    if args.engine == "ray":
        compare_engines(args.megabytes, args.workers, args.block_megabytes)
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
