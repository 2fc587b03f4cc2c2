"""Describing model weights for checkpoint markers, hand-overs and fingerprints: the sampled
digest (launch.digest: sampled, the default) against every byte's SHA-256 (full), in one run.

    .venv/bin/python bench/digests.py [--gigabytes 4] [--tensors 723]

Writes a sparse safetensors file (a valid header of ``--tensors`` tensors, the data a hole in
the file: no disk is used, and reading it costs what reading cached pages does), times both
digests of it (best of 3), and prints the ratio full / sampled and what full would take for a
70B model in bf16 (140 GB) at the measured speed. Reading real weights from disk or a network
file system makes full slower still; sampled reads the same few megabytes. Also times the
fingerprint (``serving.adapters.weights_fingerprint``) by which registering adapters over a base
already registered from the same untouched files skips the full digest.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from pathlib import Path

from llm_pipeline.serving.adapters import weights_fingerprint
from llm_pipeline.training.manifests import file_sha256, sampled_sha256


def sparse_safetensors(path: Path, gigabytes: float, tensors: int) -> int:
    total = int(gigabytes * 1e9) // tensors // 2 * 2 * tensors
    each = total // tensors
    header = {
        f"model.layers.{i}.weight": {
            "dtype": "BF16",
            "shape": [each // 2],
            "data_offsets": [i * each, (i + 1) * each],
        }
        for i in range(tensors)
    }
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        handle.truncate(8 + len(encoded) + total)
    return 8 + len(encoded) + total


def best_of(runs: int, function, *args) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=4.0)
    parser.add_argument("--tensors", type=int, default=723, help="Llama-3-70B has 723")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        size = sparse_safetensors(path, args.gigabytes, args.tensors)
        (Path(folder) / "config.json").write_text("{}")
        sampled = best_of(3, sampled_sha256, path)
        full = best_of(3, file_sha256, path)
        fingerprint = best_of(3, weights_fingerprint, Path(folder))
    per_gb = full / (size / 1e9)
    print(f"file: {size / 1e9:.1f} GB, {args.tensors} tensors (sparse)")
    print(f"sampled digest: {sampled * 1000:.1f} ms")
    print(f"full SHA-256:   {full:.2f} s ({size / 1e9 / full:.2f} GB/s)")
    print(f"70B in bf16 (140 GB), full: about {140 * per_gb / 60:.1f} min at this speed")
    print(f"fingerprint of a base registered before: {fingerprint * 1000:.2f} ms")
    print(f"ratio full / sampled: {full / sampled:.0f}")


if __name__ == "__main__":
    main()
