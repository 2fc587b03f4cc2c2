"""Supervised fine-tuning on chat conversations with TRL's SFTTrainer.

    python -m llm_pipeline.training.sft --config job.yaml
    torchrun --nproc-per-node 2 -m llm_pipeline.training.sft --config job.yaml

Keys under ``sft:`` are ``trl.SFTConfig`` fields. The data are JSON Lines with ``messages``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.training.jobs import (
    checked_fields,
    hardware_precision,
    read_job,
    save_model_folder,
)

logger = logging.getLogger(__name__)


class SFTJob(BaseModel):
    """One fine-tuning run: which model, which conversations, which SFTConfig."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    method: Literal["full"] = "full"
    sft: dict[str, Any] = Field(default_factory=dict)
    metric_prefix: str = "sft"


def read_conversations(path: Path) -> Any:
    """A ``datasets.Dataset`` with one ``messages`` list a row."""
    from datasets import Dataset

    with path.open(encoding="utf-8") as handle:
        rows = [{"messages": json.loads(line)["messages"]} for line in handle if line.strip()]
    return Dataset.from_list(rows)


def run(job: SFTJob) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llm_pipeline.training.tracking import MlflowMetricsCallback

    arguments = SFTConfig(
        output_dir=str(job.checkpoint_dir),
        report_to="none",
        **{**hardware_precision(), **checked_fields(SFTConfig, job.sft, "sft")},
    )
    tokenizer = AutoTokenizer.from_pretrained(str(job.model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(job.model_dir))
    train = read_conversations(job.train_file)
    evaluation = read_conversations(job.eval_file) if job.eval_file else None
    logger.info("Fine-tuning %s (%s) on %d conversations", job.model_dir, job.method, len(train))
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=[MlflowMetricsCallback(job.metric_prefix)],
    )
    trainer.train()
    save_model_folder(trainer, tokenizer, job, job.output_dir)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(SFTJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
