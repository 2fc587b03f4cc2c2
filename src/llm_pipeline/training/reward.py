"""A reward model trained with TRL's RewardTrainer on (prompt, chosen, rejected) pairs.

    python -m llm_pipeline.training.reward --config job.yaml
    torchrun --nproc-per-node 2 -m llm_pipeline.training.reward --config job.yaml

Keys under ``reward:`` are ``trl.RewardConfig`` fields. The model starts from the fine-tuned
model's weights with a one-output scoring head (``AutoModelForSequenceClassification``,
``num_labels=1``); a soft prompt's reward model starts from the model under the prompt. After
training, its pairwise accuracy on the held-out pairs (the fraction in which it scores the chosen
answer above the rejected one) goes into the training log, into MLflow as
``reward/heldout_accuracy`` and into ``reward_metrics.json`` in the saved folder, which is a
plain Hugging Face folder with its tokenizer: RL and AI feedback load it as it is. With ``lora``
(``align.reward_lora``) only LoRA adapters and the head train; they are folded into the starting
model when done, so the folder is the same kind of plain model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.process_exit import exit_without_teardown
from llm_pipeline.training.jobs import (
    batches_by_length,
    checked_fields,
    is_rank_zero,
    read_job,
    record_errors,
    save_model_folder,
    trainer_defaults,
)

logger = logging.getLogger(__name__)

REWARD_METRICS_FILE = "reward_metrics.json"


class RewardJob(BaseModel):
    """One reward model run: the starting model, the preference pairs and the RewardConfig."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    reward: dict[str, Any] = Field(default_factory=dict)
    # ``peft.LoraConfig`` fields (``align.reward_lora``): LoRA adapters and the score head train,
    # and are folded into the starting model when done. None: every weight trains.
    lora: dict[str, Any] | None = None
    metric_prefix: str = "reward"


def score_conversations(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], batch_size: int = 16
) -> list[float]:
    """The reward model's score of each conversation, formatted as RewardTrainer and the RL
    trainers format them (the chat template, no extra special tokens, padded on the right), in
    the order given; batched in order of length, so that little of a batch is padding."""
    import torch

    texts = [tokenizer.apply_chat_template(turns, tokenize=False) for turns in conversations]
    limit = getattr(model.config, "max_position_embeddings", None)
    scores: list[float] = [0.0] * len(texts)
    for rows in batches_by_length([len(text) for text in texts], batch_size):
        batch = tokenizer(
            [texts[index] for index in rows],
            return_tensors="pt",
            padding=True,
            padding_side="right",
            add_special_tokens=False,
            truncation=limit is not None,
            max_length=limit,
        ).to(model.device)
        with torch.inference_mode():
            found = model(**batch).logits[:, 0].float().tolist()
        for index, score in zip(rows, found, strict=True):
            scores[index] = score
    return scores


def pair_conversations(pairs: Any) -> tuple[list, list]:
    """The chosen and the rejected conversation of each pair of a preference dataset."""
    chosen = [row["prompt"] + row["chosen"] for row in pairs]
    rejected = [row["prompt"] + row["rejected"] for row in pairs]
    return chosen, rejected


def pairwise_accuracy(chosen_scores: list[float], rejected_scores: list[float]) -> float:
    """The fraction of pairs whose chosen answer scores strictly above the rejected one."""
    if not chosen_scores:
        raise ValueError("No preference pairs to measure accuracy on.")
    wins = sum(c > r for c, r in zip(chosen_scores, rejected_scores, strict=True))
    return wins / len(chosen_scores)


def heldout_metrics(model: Any, tokenizer: Any, pairs: Any) -> dict[str, float]:
    """Pairwise accuracy and mean score margin of the reward model on held-out pairs."""
    was_training = model.training
    model.eval()
    chosen, rejected = pair_conversations(pairs)
    chosen_scores = score_conversations(model, tokenizer, chosen)
    rejected_scores = score_conversations(model, tokenizer, rejected)
    model.train(was_training)
    margins = [c - r for c, r in zip(chosen_scores, rejected_scores, strict=True)]
    return {
        "heldout_accuracy": pairwise_accuracy(chosen_scores, rejected_scores),
        "heldout_margin": sum(margins) / len(margins),
        "heldout_pairs": float(len(margins)),
    }


def starting_weights(model_dir: Path) -> str:
    """The folder whose weights the reward model starts from: a soft prompt's base model."""
    from llm_pipeline.training.models import adapter_base_model, is_adapter_folder

    return adapter_base_model(model_dir) if is_adapter_folder(model_dir) else str(model_dir)


def run(job: RewardJob) -> None:
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from llm_pipeline.training.checkpoints import (
        CompleteCheckpoints,
        SameWeightsOnEveryRank,
        resumable_checkpoint,
    )
    from llm_pipeline.training.dpo import lora_config, read_preference_pairs
    from llm_pipeline.training.tracking import MlflowMetricsCallback

    arguments = RewardConfig(
        output_dir=str(job.checkpoint_dir),
        report_to="none",
        **{**trainer_defaults(), **checked_fields(RewardConfig, job.reward, "reward")},
    )
    tokenizer = AutoTokenizer.from_pretrained(str(job.model_dir))
    train = read_preference_pairs(job.train_file)
    heldout = read_preference_pairs(job.eval_file) if job.eval_file else None
    logger.info("Reward model from %s on %d preference pairs", job.model_dir, len(train))
    start = starting_weights(job.model_dir)
    trainer = RewardTrainer(
        # A path: TRL loads it with a fresh one-output head, seeded, and sets its pad token id.
        model=start,
        # PEFT trains the score head whole beside the adapters (SEQ_CLS saves it with them).
        peft_config=lora_config(job.lora, "align.reward_lora", "SEQ_CLS"),
        args=arguments,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tokenizer,
        callbacks=[
            MlflowMetricsCallback(job.metric_prefix),
            CompleteCheckpoints(),
            SameWeightsOnEveryRank(),
        ],
    )
    trainer.train(resume_from_checkpoint=resumable_checkpoint(job.checkpoint_dir))
    metrics = heldout_metrics(trainer.model, tokenizer, heldout) if heldout else {}
    if metrics:
        logger.info(
            "Reward model ranks the chosen answer first in %.1f%% of %d held-out pairs",
            100 * metrics["heldout_accuracy"],
            int(metrics["heldout_pairs"]),
        )
        trainer.log(dict(metrics))  # into the training log and, through the callback, MLflow
    # With LoRA the trainer saves the adapters and the head: folded into the starting model, the
    # folder is a plain reward model as without.
    save_model_folder(trainer, tokenizer, job, job.output_dir, start if job.lora else None)
    if is_rank_zero():
        summary = {**metrics, "train_pairs": len(train)}
        (job.output_dir / REWARD_METRICS_FILE).write_text(json.dumps(summary, indent=1))


@record_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(RewardJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
