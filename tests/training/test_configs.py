"""Config classes refuse what they do not know (every environment: tests/test_parameters.py)."""

from __future__ import annotations

import pytest

from llm_pipeline.training.jobs import checked_fields


def test_a_misspelt_model_key_is_refused():
    from transformers import LlamaConfig

    with pytest.raises(ValueError, match="hidden_sise"):
        checked_fields(LlamaConfig, {"hidden_sise": 64}, "model")
