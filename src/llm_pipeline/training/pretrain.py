"""Pretrain a causal language model from scratch on documents packed into fixed-length blocks.

    python -m llm_pipeline.training.pretrain --config job.yaml        # one process
    torchrun --nproc-per-node 2 -m llm_pipeline.training.pretrain --config job.yaml

Keys under ``model:`` are fields of the transformers config class of ``architecture``; keys under
``training:`` are ``transformers.TrainingArguments`` fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
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


class PretrainJob(BaseModel):
    """Everything one pretraining run needs; the node writes it, the folder keeps it."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    tokenizer_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    block_size: int = Field(128, ge=8)
    architecture: Literal["llama"] = "llama"
    model: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    metric_prefix: str = "pretrain"


def read_texts(path: Path) -> list[str]:
    """The ``text`` field of every line of a JSON Lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def pack_into_blocks(token_ids: Iterable[list[int]], separator_id: int, block_size: int) -> list:
    """Concatenate documents, each followed by ``separator_id``, and cut into full blocks.

    The tail shorter than a block is dropped: packing wastes no compute on padding.
    """
    stream: list[int] = []
    for ids in token_ids:
        stream.extend(ids)
        stream.append(separator_id)
    usable = len(stream) - len(stream) % block_size
    return [stream[start : start + block_size] for start in range(0, usable, block_size)]


def build_model(job: PretrainJob, tokenizer: Any) -> Any:
    """A freshly initialised model of ``job.architecture`` sized by ``job.model``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = checked_fields(LlamaConfig, job.model, "model")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **fields,
    )
    return LlamaForCausalLM(config)


def block_dataset(path: Path, tokenizer: Any, block_size: int) -> Any:
    from datasets import Dataset

    encoded = tokenizer(read_texts(path), add_special_tokens=False)["input_ids"]
    blocks = pack_into_blocks(encoded, tokenizer.bos_token_id, block_size)
    if not blocks:
        raise ValueError(f"{path} has fewer than {block_size} tokens: nothing to train on.")
    return Dataset.from_dict({"input_ids": blocks, "labels": blocks})


def run(job: PretrainJob) -> None:
    from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

    from llm_pipeline.training.tracking import MlflowMetricsCallback

    arguments = TrainingArguments(
        output_dir=str(job.checkpoint_dir),
        report_to="none",
        **{**hardware_precision(), **checked_fields(TrainingArguments, job.training, "training")},
    )
    set_seed(arguments.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(job.tokenizer_dir))
    model = build_model(job, tokenizer)
    train = block_dataset(job.train_file, tokenizer, job.block_size)
    evaluation = block_dataset(job.eval_file, tokenizer, job.block_size) if job.eval_file else None
    logger.info(
        "Pretraining %.2fM parameters on %d blocks of %d tokens",
        model.num_parameters() / 1e6,
        len(train),
        job.block_size,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        callbacks=[MlflowMetricsCallback(job.metric_prefix)],
    )
    trainer.train()
    save_model_folder(trainer, tokenizer, job, job.output_dir)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(PretrainJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
