"""Fixtures for the evaluate tests: real, tiny model folders and a small validation set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support import build_tiny_model, small_evaluate_params


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture and tokenizer as ``tiny_model_dir``, different random weights."""
    return build_tiny_model(tmp_path_factory.mktemp("other_model"), seed=1)


@pytest.fixture
def validation_set() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": "val-0001",
                "prompt": "How long does the tent take to ship?",
                "reference": "The tent ships in 3 days.",
                "context": "Every tent ships in 3 days.",
                "messages": [{"role": "user", "content": "How long does the tent take to ship?"}],
            },
            {
                "id": "val-0002",
                "prompt": "And the boots?",
                "reference": "The hiking boots ship in 5 days.",
                "context": None,
                "messages": [
                    {"role": "user", "content": "Can I return my tent?"},
                    {"role": "assistant", "content": "Yes, within two weeks."},
                    {"role": "user", "content": "And the boots?"},
                ],
            },
            {
                "id": "val-0003",
                "prompt": "What does the camping stove cost?",
                "reference": "The camping stove costs 45 euros.",
                "context": "The camping stove costs 45 euros.",
                "messages": [{"role": "user", "content": "What does the camping stove cost?"}],
            },
        ]
    )


@pytest.fixture
def eval_params() -> dict:
    """conf/tiny's evaluate parameters, scaled down, with no prompt variants."""
    return small_evaluate_params()
