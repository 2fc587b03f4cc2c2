"""Describing a folder of model files cheaply: sampled digests of large files, full ones when
asked (then every rank hashes a share), and fingerprints from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from support import job_module, launch_config

from llm_pipeline.training import manifests
from llm_pipeline.training.checkpoints import MARKER_FILE
from llm_pipeline.training.launch import launch
from llm_pipeline.training.manifests import (
    facts_problem,
    file_facts,
    folder_manifest,
    manifest_problem,
    sampled_sha256,
)
from llm_pipeline.training.stage_jobs import job_fingerprint


@pytest.fixture(autouse=True)
def every_file_is_large(monkeypatch):
    """Files of a few MB stand for weights of many GB: every file is sampled."""
    monkeypatch.setattr(manifests, "SMALL_FILE", 0)


def save_weights(path: Path, middle: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Three tensors in name order: a large first one, a small middle one (as a LoRA-trained
    projection among frozen weights), a large last one."""
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "a.embed": torch.randn(1024, 1024, generator=generator),
        "b.q_proj": torch.randn(64, 64, generator=generator) if middle is None else middle,
        "c.norm": torch.randn(1024, 1024, generator=generator),
    }
    save_file(tensors, str(path))
    return tensors


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tensor_changed_anywhere_in_the_file_changes_the_sampled_digest(tmp_path):
    weights = tmp_path / "model.safetensors"
    tensors = save_weights(weights)
    before = sampled_sha256(weights)
    # The small middle tensor lies between two of the evenly spaced samples: only the blocks
    # read from every tensor see it.
    save_weights(weights, middle=tensors["b.q_proj"] + 1e-3)
    assert sampled_sha256(weights) != before
    save_weights(weights)
    assert sampled_sha256(weights) == before


def test_a_single_byte_between_the_samples_needs_the_full_digest(tmp_path):
    weights = tmp_path / "model.safetensors"
    save_weights(weights)
    sampled, full = file_facts(weights, "sampled"), file_facts(weights, "full")
    assert set(sampled) == {"bytes", "sampled_sha256"} and set(full) == {"bytes", "sha256"}
    # 10,000 bytes into the first tensor: past its first block, far from its middle and from
    # the file's evenly spaced blocks (every 32 KB, 4 KB each).
    header = int.from_bytes(weights.read_bytes()[:8], "little")
    flip_byte(weights, 8 + header + 10_000)
    assert facts_problem(weights, sampled) is None
    assert "SHA-256 (corrupt)" in facts_problem(weights, full)


def test_a_truncated_or_torn_file_is_caught_by_its_size_and_samples(tmp_path):
    weights = tmp_path / "model.safetensors"
    save_weights(weights)
    facts = file_facts(weights, "sampled")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert "truncated" in facts_problem(weights, facts)
    # The same size, its second half from another save (zeros, as after a crash).
    weights.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    assert "sampled SHA-256 (corrupt)" in facts_problem(weights, facts)


def test_a_folder_checks_against_its_manifest(tmp_path):
    save_weights(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    expected = folder_manifest(tmp_path, mode="sampled")
    assert manifest_problem(tmp_path, expected, MARKER_FILE) is None
    (tmp_path / "extra.bin").write_bytes(b"x")
    assert manifest_problem(tmp_path, expected, MARKER_FILE) == (
        "files missing [], unexpected ['extra.bin']"
    )


def test_the_fingerprint_of_a_job_follows_its_model_s_tensors(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    tensors = save_weights(model / "model.safetensors")
    job = {"model_dir": str(model)}
    config = launch_config()
    first = job_fingerprint("llm_pipeline.training.dpo", job, {}, config)
    assert job_fingerprint("llm_pipeline.training.dpo", job, {}, config) == first
    save_weights(model / "model.safetensors", middle=tensors["b.q_proj"] * 2)
    assert job_fingerprint("llm_pipeline.training.dpo", job, {}, config) != first


# Each worker hashes its share of the folder that the job names, counting what it hashed.
HASH_A_SHARE = """
import argparse, json, sys
from pathlib import Path
import torch.distributed as dist
import yaml
from llm_pipeline.training import manifests
from llm_pipeline.training.checkpoints import shared_manifest

parser = argparse.ArgumentParser()
parser.add_argument("--config", type=Path)
job = yaml.safe_load(parser.parse_args().config.read_text())
dist.init_process_group("gloo")
hashed = []
real = manifests.file_facts

def counting(path, mode):
    hashed.append(path.name)
    return real(path, mode)

manifests.file_facts = counting
manifest = shared_manifest(Path(job["folder"]))
result = {"manifest": manifest, "hashed": hashed}
Path(job["results"], f"rank{dist.get_rank()}.json").write_text(json.dumps(result))
dist.destroy_process_group()
"""


def test_full_digests_of_a_checkpoint_are_shared_out_between_the_ranks(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    for name in ("model.safetensors", "optimizer.pt", "rng_state_0.pth", "rng_state_1.pth"):
        (folder / name).write_bytes(os.urandom(1000 + len(name)))
    results = tmp_path / "results"
    results.mkdir()
    module = job_module(tmp_path, monkeypatch, "hash_a_share", HASH_A_SHARE)
    job = {"folder": str(folder), "results": str(results)}
    launch(module, job, launch_config(nproc_per_node=2, digest="full"), tmp_path / "job")
    ranks = [json.loads((results / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    expected = folder_manifest(folder, MARKER_FILE, mode="full")
    assert ranks[0]["manifest"] == ranks[1]["manifest"] == expected
    # Each file was hashed by one rank only, two files each.
    assert sorted(ranks[0]["hashed"] + ranks[1]["hashed"]) == sorted(expected)
    assert len(ranks[0]["hashed"]) == len(ranks[1]["hashed"]) == 2
