"""The align and evaluate pipelines over an in-memory catalog, on a preference set the project has
never seen (a bakery's, written here): a reward model, the aligned model by DPO or RLHF, real
torchrun jobs logging into the active MLflow run, and the evidence in the metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from support import (
    RETRIEVAL_OFF,
    build_tiny_model,
    isolated_mlflow,
    parameters_of,
    small_evaluate_params,
)

from llm_pipeline.datasets import (
    Folder,
    ModelFolder,
    RegistryModelFolderDataset,
    StartingModelDataset,
)
from llm_pipeline.pipelines.align import create_pipeline as align_pipeline
from llm_pipeline.pipelines.align.nodes import align_model
from llm_pipeline.pipelines.evaluate import create_pipeline as evaluate_pipeline

BREADS = ("sourdough", "rye loaf", "baguette", "spelt bread", "brioche", "seeded roll")
DAYS = ("Monday", "Tuesday", "Friday", "Saturday")


def bakery_pairs() -> pd.DataFrame:
    rows = []
    for n, (bread, day) in enumerate((b, d) for b in BREADS for d in DAYS):
        rows.append(
            {
                "id": f"bakery-{n:03d}",
                "prompt": f"Will you have {bread} on {day} morning?",
                "chosen": f"Yes, we bake {bread} every {day} from 7 am. See you then!",
                "rejected": "Bread is bread. Come and see.",
            }
        )
    return pd.DataFrame(rows)


def bakery_validation() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["val-1", "val-2"],
            "prompt": ["Do you sell sourdough?", "When do you open on Friday?"],
            "reference": ["Yes, every day from 7 am.", "We open at 7 am on Friday."],
            "context": [None, None],
            "messages": [
                [{"role": "user", "content": "Do you sell sourdough?"}],
                [{"role": "user", "content": "When do you open on Friday?"}],
            ],
        }
    )


class KeptDataset(MemoryDataset):
    """An intermediate output the runner must not release: the test reads it afterwards."""

    def _release(self) -> None:
        pass


ALIGN = {
    "reward_model_with_dpo": False,
    "lora": None,
    "reward_lora": None,
    "model_init_kwargs": {
        "dtype": "float32",
        "attn_implementation": None,
        "quantization_config": None,
    },
    "reward": {
        "max_steps": 6,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "logging_steps": 2,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "seed": 1,
        "disable_tqdm": True,
    },
    "rl": {
        "algorithm": "grpo",
        "reward_model_weight": 1.0,
        "rules": {"forbidden": {"words": ["bread is bread"], "weight": 1.0}},
        "grpo": {
            "max_steps": 3,
            "per_device_train_batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 8,
            "learning_rate": 5e-3,
            "beta": 0.1,
            "logging_steps": 1,
            "activation_checkpointing": False,
            "save_strategy": "no",
            "seed": 1,
            "disable_tqdm": True,
        },
    },
    "dpo": {
        "max_steps": 3,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "beta": 0.1,
        "max_length": 96,
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 1,
        "disable_tqdm": True,
    },
}


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    import mlflow

    with isolated_mlflow(tmp_path, monkeypatch):
        yield mlflow.MlflowClient()


@pytest.mark.slow
def test_a_new_preference_set_is_aligned_and_the_evidence_reported(tracking, tmp_path, monkeypatch):
    """By DPO; by RLHF, the same stages as `kedro run` in tests/pipelines/align/test_rlhf_run.py,
    whose evidence must also show that the reward model's score rose."""
    import mlflow

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sft = build_tiny_model(tmp_path / "sft")
    pairs = bakery_pairs()
    catalog = DataCatalog(
        datasets={
            "validated_preferences_train": MemoryDataset(pairs.iloc[4:]),
            "validated_preferences_validation": MemoryDataset(pairs.iloc[:4]),
            "validated_validation_set": MemoryDataset(bakery_validation()),
            "validated_documents_validation": MemoryDataset(
                pd.DataFrame({"text": [f"We bake {bread} every morning." for bread in BREADS]})
            ),
            "base_model": MemoryDataset(ModelFolder(sft)),
            "starting_model": StartingModelDataset(None, str(tmp_path / "gguf")),
            "passage_index": MemoryDataset(Folder(tmp_path / "no-index")),
            "params:retrieval": MemoryDataset(RETRIEVAL_OFF),
            "sft_model": MemoryDataset(ModelFolder(sft)),
            # The registry of this run's tracking store, which has no champion yet.
            "champion_model_folder": RegistryModelFolderDataset(
                "llm-pipeline", "champion", str(tmp_path / "champion")
            ),
            "params:align": MemoryDataset({**ALIGN, "method": "dpo"}),
            "reward_model": KeptDataset(),
            "aligned_model": KeptDataset(),
            "params:launch": MemoryDataset(
                parameters_of("launch", checkpoint_root=None, staging_root=None)
            ),
            "params:evaluate": MemoryDataset(small_evaluate_params(max_new_tokens=6, canary=None)),
        }
    )
    with mlflow.start_run() as run:
        outputs = SequentialRunner().run(align_pipeline() + evaluate_pipeline(), catalog)
    logged = tracking.get_run(run.info.run_id).data.metrics

    metrics = outputs["evaluation_metrics"].load()
    evidence = metrics["alignment"]
    assert metrics["documents"]["base"]["n"] == len(BREADS)
    assert evidence["heldout_pairs"] == 4 and evidence["validation_prompts"] == 2
    for name in (
        "sft_preference_accuracy",
        "aligned_preference_accuracy",
        "implicit_reward_accuracy",
    ):
        assert 0.0 <= evidence[name] <= 1.0, name
    assert isinstance(evidence["implicit_reward_margin"], float)
    assert evidence["beta"] == 0.1
    tracked = outputs["evaluation_metrics_tracked"].load()
    assert tracked["alignment.aligned_preference_accuracy"]["value"] == pytest.approx(
        evidence["aligned_preference_accuracy"]
    )
    assert {"base", "sft", "aligned"} <= set(metrics)
    assert "champion" not in metrics
    assert metrics["canary"]["computed"] is False

    aligned = Path(catalog["aligned_model"].load().path)
    assert "algorithm" not in (aligned / "llm_pipeline_config.yaml").read_text()
    reward_model = catalog["reward_model"].load()
    # DPO needs no reward model, and align.reward_model_with_dpo is false: none trained.
    assert "dpo" in reward_model.not_trained
    assert not (reward_model.path / "config.json").exists()
    assert "reward/heldout_accuracy" not in logged
    assert evidence["sft_reward_model_score"] is None
    assert "no reward model" in evidence["reward_model_score_gain"]["reason"]
    assert "alignment.reward_model_score_gain.difference" not in tracked
    assert evidence["method"] == "dpo"
    assert "dpo/loss" in logged and "rl/reward" not in logged
    # Every held-out pair rejects the same rude answer: DPO has learnt to move away from it.
    assert evidence["implicit_reward_accuracy"] == 1.0
    assert evidence["implicit_reward_margin"] > 0


@pytest.mark.parametrize(
    "params, message",
    [
        ({"method": "ppo"}, r"align.method is 'ppo'; it must be one of \['dpo', 'rlhf'\]"),
        ({"method": "rlhf", "rl": {"algorithm": "ppo"}}, "align.rl.algorithm is 'ppo'"),
    ],
)
def test_an_unknown_method_or_algorithm_is_refused(params, message, tmp_path):
    pairs = bakery_pairs()
    folder = ModelFolder(tmp_path)
    with pytest.raises(ValueError, match=message):
        align_model(pairs, pairs, folder, folder, folder, params, RETRIEVAL_OFF, {})


def test_rlhf_without_a_trained_reward_model_is_refused_with_what_to_do(tmp_path):
    pairs = bakery_pairs()
    folder = ModelFolder(tmp_path)
    none = ModelFolder.untrained(tmp_path / "reward_model", "align.method is dpo")
    params = {**ALIGN, "method": "rlhf"}
    with pytest.raises(ValueError, match=r"holds none \(align.method is dpo\).*--pipeline align"):
        align_model(pairs, pairs, folder, none, folder, params, RETRIEVAL_OFF, {})


def test_dpo_trains_no_reward_model_unless_asked(tmp_path):
    """Without reward_model_with_dpo nothing is launched (a launch on this empty folder would
    fail): the folder says why. The shared tiny run trains one under DPO (conf/tiny), the RLHF
    case above under RLHF."""
    from llm_pipeline.pipelines.align.nodes import train_reward_model

    pairs, folder = bakery_pairs(), ModelFolder(tmp_path / "no-model")
    params = {**ALIGN, "method": "dpo"}

    skipped = train_reward_model(pairs, pairs, folder, folder, params, RETRIEVAL_OFF, {})

    assert skipped.not_trained.startswith("align.method is dpo, which needs no reward model")
    assert [path.name for path in skipped.path.iterdir()] == ["not_trained.json"]


def test_the_dag_trains_the_reward_model_before_aligning_with_it():
    nodes = {node.name: node for node in align_pipeline().nodes}
    assert set(nodes) == {"train_reward_model", "align_model"}
    assert nodes["train_reward_model"].outputs == ["reward_model"]
    assert "reward_model" in nodes["align_model"].inputs
    assert nodes["align_model"].outputs == ["aligned_model"]
    evaluate = {node.name: node for node in evaluate_pipeline().nodes}
    assert "reward_model" in evaluate["measure_alignment"].inputs
    assert evaluate["report_metrics"].outputs == [
        "evaluation_metrics",
        "evaluation_metrics_tracked",
    ]
