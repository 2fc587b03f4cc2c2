"""Align: a reward model from the preference pairs, then the fine-tuned model aligned to them.

``align.method`` says how:
- ``dpo``: direct preference optimisation on the pairs (``training.dpo``);
- ``rlhf``: reinforcement learning (GRPO or RLOO, ``align.rl.algorithm``) against the reward
  model and the rule rewards of ``align.rl.rules``, with a KL penalty (``training.rl``).
RLHF learns from a reward model, trained first. DPO learns from the pairs themselves and needs
none: under DPO the reward model trains only with ``align.reward_model_with_dpo`` (the evaluate
stage then scores both models' answers with it, and the feedback pipeline can judge with it);
otherwise its folder holds only the reason it was not trained (``ModelFolder.not_trained``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from llm_pipeline.datasets.model_folder import Folder, ModelFolder

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]
METHODS = ("dpo", "rlhf")
ALGORITHMS = ("grpo", "rloo")


def preference_tables(
    preferences_train: pd.DataFrame,
    preferences_validation: pd.DataFrame,
    passage_index: Folder,
    retrieval_params: dict[str, Any],
) -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """The job files: training pairs, and held-out pairs when there are any, each prompt with
    the passages retrieved for it as a ``system`` turn (empty when retrieval is off)."""
    from llm_pipeline.retrieval.conversations import grounding

    ground = grounding(passage_index.path, retrieval_params, training=True)

    def grounded(pairs: pd.DataFrame) -> pd.DataFrame:
        chats = ground([[{"role": "user", "content": prompt}] for prompt in pairs["prompt"]])
        systems = [chat[0]["content"] if chat[0]["role"] == "system" else "" for chat in chats]
        return pairs.assign(system=systems)

    columns = [*PAIR_COLUMNS, "system"]
    tables = {"train_file": (grounded(preferences_train), columns)}
    if len(preferences_validation):
        tables["eval_file"] = (grounded(preferences_validation), columns)
    return tables


def train_reward_model(
    preferences_train: pd.DataFrame,
    preferences_validation: pd.DataFrame,
    sft_model: ModelFolder,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """A reward model (the fine-tuned model with a scoring head) trained with TRL's
    RewardTrainer; its held-out pairwise accuracy is in the folder's reward_metrics.json. Under
    DPO, without ``reward_model_with_dpo``, a folder that says why none was trained."""
    import tempfile
    from pathlib import Path

    from llm_pipeline.training.stage_jobs import run_training_job

    if params["method"] == "dpo" and not params["reward_model_with_dpo"]:
        reason = (
            "align.method is dpo, which needs no reward model, and align.reward_model_with_dpo "
            "is false"
        )
        logger.info("No reward model trained: %s.", reason)
        return ModelFolder.untrained(Path(tempfile.mkdtemp(prefix="llm-pipeline-model-")), reason)
    job = {"model_dir": sft_model.path, "reward": params["reward"], "lora": params["reward_lora"]}
    tables = preference_tables(
        preferences_train, preferences_validation, passage_index, retrieval_params
    )
    return run_training_job("llm_pipeline.training.reward", job, tables, launch_params)


def align_model(
    preferences_train: pd.DataFrame,
    preferences_validation: pd.DataFrame,
    sft_model: ModelFolder,
    reward_model: ModelFolder,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The fine-tuned model aligned by ``params.method`` (module docstring)."""
    from llm_pipeline.training.stage_jobs import run_training_job

    method = params["method"]
    if method not in METHODS:
        raise ValueError(f"align.method is '{method}'; it must be one of {list(METHODS)}.")
    tables = preference_tables(
        preferences_train, preferences_validation, passage_index, retrieval_params
    )
    if method == "dpo":
        job = {
            "model_dir": sft_model.path,
            "dpo": params["dpo"],
            "lora": params["lora"],
            "model_init_kwargs": params["model_init_kwargs"],
        }
        return run_training_job("llm_pipeline.training.dpo", job, tables, launch_params)
    rl = params["rl"]
    if rl["algorithm"] not in ALGORITHMS:
        raise ValueError(
            f"align.rl.algorithm is '{rl['algorithm']}'; it must be one of {list(ALGORITHMS)} "
            "(TRL has no PPO trainer any more)."
        )
    job = {
        "model_dir": sft_model.path,
        "reward_model_dir": reward_model.path,
        "algorithm": rl["algorithm"],
        "reward_model_weight": rl["reward_model_weight"],
        "rules": rl["rules"],
        rl["algorithm"]: rl[rl["algorithm"]],
        "lora": params["lora"],
        "model_init_kwargs": params["model_init_kwargs"],
    }
    if reward_model.not_trained:
        raise ValueError(
            f"RLHF learns from a reward model, and {reward_model.path} holds none "
            f"({reward_model.not_trained}): run the align stage whole "
            "(kedro run --pipeline align --params align.method=rlhf), which trains it first."
        )
    logger.info("Aligning with RLHF (%s) against %s", rl["algorithm"], reward_model.path)
    return run_training_job("llm_pipeline.training.rl", job, tables, launch_params)
