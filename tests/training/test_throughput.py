"""The GPU peaks MFU is measured against: the right one for each name torch reports, and the
same table in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_pipeline.training.throughput import PEAK_FLOPS_BY_GPU_NAME, peak_flops_for


@pytest.mark.parametrize(
    ("name", "teraflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA B200", 2250),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A10G", 125),
        ("NVIDIA A10", 125),
        ("NVIDIA L40S", 362),
        ("NVIDIA L40", 181),
        ("NVIDIA L4", 121),
        ("Tesla V100-SXM2-16GB", 125),
        ("Tesla T4", 65),
        ("NVIDIA GeForce RTX 3060", None),
    ],
)
def test_each_gpu_gets_its_own_peak(name, teraflops):
    peak = peak_flops_for(name)
    assert (peak is None and teraflops is None) or peak == teraflops * 1e12


def test_the_docs_table_is_the_code_table():
    text = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    rows = re.findall(r"^\s*\| ([A-Z][\w ]*?) \| (\d+) \|$", text, re.M)
    assert rows == [(name, f"{peak / 1e12:g}") for name, peak in PEAK_FLOPS_BY_GPU_NAME]
