"""Each model folder is loaded once per process, however many evaluation nodes read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import RETRIEVAL_OFF, build_tiny_model, small_evaluate_params

from llm_pipeline.datasets import Folder, ModelFolder
from llm_pipeline.pipelines.evaluate import loaded_models
from llm_pipeline.pipelines.evaluate.loaded_models import LoadedModels
from llm_pipeline.pipelines.evaluate.nodes import evaluate_models, score_prompt_variants


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("other_model"), seed=1)


def parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_a_folder_read_twice_is_loaded_once_and_in_eval_mode(tiny_model_dir):
    models = LoadedModels(max_bytes=10**9)
    first = models.causal_lm(tiny_model_dir)
    assert models.causal_lm(str(tiny_model_dir)) is first
    assert models.loads == 1 and not first.training


def test_a_folder_written_anew_is_loaded_anew(tiny_model_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    models = LoadedModels(max_bytes=10**9)
    first = models.causal_lm(folder)
    config = folder / "config.json"
    config.write_text(config.read_text() + " ")
    assert models.causal_lm(folder) is not first
    # The stale model is dropped, not kept beside the new one.
    assert models.loads == 2 and len(models) == 1


def test_the_least_recently_used_model_goes_when_the_next_does_not_fit(
    tiny_model_dir, other_model_dir
):
    size = parameter_bytes(LoadedModels(max_bytes=10**9).causal_lm(tiny_model_dir))
    models = LoadedModels(max_bytes=size)  # room for one
    tiny = models.causal_lm(tiny_model_dir)
    models.causal_lm(other_model_dir)
    assert models.held_bytes() == size and len(models) == 1
    assert models.causal_lm(tiny_model_dir) is not tiny
    assert models.loads == 3


def test_a_model_larger_than_the_budget_is_returned_but_not_kept(tiny_model_dir):
    models = LoadedModels(max_bytes=1)
    assert models.causal_lm(tiny_model_dir) is not None
    assert len(models) == 0 and models.held_bytes() == 0


@pytest.mark.slow
def test_the_evaluate_nodes_load_each_model_folder_once(
    tiny_model_dir, other_model_dir, monkeypatch
):
    import pandas as pd

    models = LoadedModels(max_bytes=10**9)
    monkeypatch.setattr(loaded_models, "MODELS", models)
    validation = pd.DataFrame(
        [
            {
                "id": "val-0001",
                "prompt": "How long does the tent take to ship?",
                "reference": "The tent ships in 3 days.",
                "context": None,
                "messages": [{"role": "user", "content": "How long does the tent take to ship?"}],
            }
        ]
    )
    params = small_evaluate_params(
        max_new_tokens=4,
        samples_in_report=1,
        prompt_variants={"none": None, "brief": "Answer in one word."},
    )
    tiny, other, no_index = (
        ModelFolder(tiny_model_dir),
        ModelFolder(other_model_dir),
        Folder(Path("no-index")),
    )
    # base, adapted, sft, aligned, champion: two folders between them.
    evaluate_models(validation, tiny, other, tiny, other, tiny, no_index, params, RETRIEVAL_OFF)
    score_prompt_variants(validation, other, no_index, params, RETRIEVAL_OFF)
    assert models.loads == 2


def test_on_gpus_models_that_only_answer_spread_over_them_in_bf16(monkeypatch):
    import torch

    from llm_pipeline.training.models import inference_placement

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_placement() == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert inference_placement() == {"device_map": "auto", "dtype": torch.bfloat16}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert inference_placement()["dtype"] == torch.float16


def test_the_placement_reaches_the_loaded_model(tiny_model_dir, monkeypatch):
    """What ``inference_placement`` says is how the store loads (bf16 here, on the CPU, as on a
    GPU without ``device_map``); answers then come from inputs put on the model's device."""
    import torch

    monkeypatch.setattr(loaded_models, "inference_placement", lambda: {"dtype": torch.bfloat16})
    model = LoadedModels().causal_lm(tiny_model_dir)
    assert next(model.parameters()).dtype == torch.bfloat16
