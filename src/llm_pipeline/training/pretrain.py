"""Pretrain a causal language model on documents packed into fixed-length blocks: from scratch,
or, with ``starting_model_dir``, an existing model further (domain-adaptive pretraining).

    python -m llm_pipeline.training.pretrain --config job.yaml        # one process
    torchrun --nproc-per-node 2 -m llm_pipeline.training.pretrain --config job.yaml

Keys under ``model:`` are fields of the transformers config class of ``architecture``
(``LlamaConfig`` for ``llama``, ``GPT2Config`` for ``gpt2``); keys under ``training:`` are
``transformers.TrainingArguments`` fields, so warmup, the cosine schedule, gradient accumulation,
gradient checkpointing and evaluation every N steps are set there. Precision follows the hardware
(bf16, else fp16 on a GPU, fp32 on CPU) unless ``training:`` says otherwise. Rank 0 logs
``<metric_prefix>/tokens_per_second`` and ``<metric_prefix>/mfu`` with the loss.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.process_exit import exit_without_teardown
from llm_pipeline.training.jobs import (
    checked_fields,
    is_rank_zero,
    read_job,
    record_errors,
    save_model_folder,
    trainer_defaults,
)
from llm_pipeline.training.tokenizer import DOCUMENT_SEPARATOR

logger = logging.getLogger(__name__)

# Documents per tokenizer call: large enough for its threads, small enough to report progress.
TOKENIZE_BATCH = 1024


class PretrainJob(BaseModel):
    """Everything one pretraining run needs; the node writes it, the folder keeps it."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    tokenizer_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    block_size: int = Field(128, ge=8)
    architecture: Literal["llama", "gpt2"] = "llama"
    model: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    # Peak FLOPs per second of one device, for MFU; unset means the known GPU's, none on CPU.
    peak_flops_per_device: float | None = Field(None, gt=0)
    metric_prefix: str = "pretrain"
    # Continued pretraining of this model (its tokenizer is tokenizer_dir); None: from scratch.
    starting_model_dir: Path | None = None


# What each ``architecture`` builds: its config class and its causal language model class.
ARCHITECTURES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
}


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
    """The starting model in fp32 (mixed precision keeps fp32 master weights), or a freshly
    initialised model of ``job.architecture`` sized by ``job.model``."""
    import transformers

    if job.starting_model_dir is not None:
        import torch

        return transformers.AutoModelForCausalLM.from_pretrained(
            str(job.starting_model_dir), dtype=torch.float32
        )
    config_name, model_name = ARCHITECTURES[job.architecture]
    config_class = getattr(transformers, config_name)
    fields = checked_fields(config_class, job.model, "model")
    config = config_class(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **fields,
    )
    if config.max_position_embeddings < job.block_size:
        raise ValueError(
            f"block_size {job.block_size} is longer than the model's "
            f"{config.max_position_embeddings} positions: raise the position count under 'model'."
        )
    return getattr(transformers, model_name)(config)


def tokenize_documents(texts: list[str], tokenizer: Any, label: str) -> list[list[int]]:
    """Token ids of each text, in batches: a bar on a terminal and, on rank 0, a progress line
    in the log (every ``launch.progress_seconds``, and at the end)."""
    from tqdm import tqdm

    from llm_pipeline.training.tracking import ProgressLine, progress_seconds

    progress = ProgressLine(progress_seconds(), unit="document")
    progress.start(0, len(texts))
    encoded: list[list[int]] = []
    tokens = 0
    with tqdm(total=len(texts), desc=label, unit=" documents", disable=None) as bar:
        for start in range(0, len(texts), TOKENIZE_BATCH):
            batch = texts[start : start + TOKENIZE_BATCH]
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            encoded.extend(ids)
            tokens += sum(len(one) for one in ids)
            bar.update(len(batch))
            line = progress.line(len(encoded), tokens)
            if line and is_rank_zero():
                logger.info("%s: %s", label, line)
    return encoded


def block_dataset(path: Path, tokenizer: Any, block_size: int) -> Any:
    """The documents of ``path`` packed into blocks, each its own label sequence."""
    from datasets import Dataset

    encoded = tokenize_documents(read_texts(path), tokenizer, f"tokenize {path.name}")
    # Documents are separated by our own tokenizers' separator (their bos); a starting model's
    # tokenizer has no such token of ours, and its end-of-sequence token ends a document.
    own = tokenizer.bos_token == DOCUMENT_SEPARATOR
    separator = tokenizer.bos_token_id if own else tokenizer.eos_token_id
    blocks = pack_into_blocks(encoded, separator, block_size)
    if not blocks:
        raise ValueError(f"{path} has fewer than {block_size} tokens: nothing to train on.")
    # Torch format: batches are stacked from tensors rather than built from Python lists.
    return Dataset.from_dict({"input_ids": blocks, "labels": blocks}).with_format("torch")


def training_arguments(job: PretrainJob, evaluates: bool) -> Any:
    """``job.training`` over the hardware's precision; no evaluation when there is nothing to
    evaluate on, rather than the Trainer refusing to start."""
    from transformers import TrainingArguments

    fields = checked_fields(TrainingArguments, job.training, "training")
    if not evaluates and fields.get("eval_strategy", "no") != "no":
        logger.warning("No validation documents: evaluation is off for this run.")
        fields = {**fields, "eval_strategy": "no"}
    return TrainingArguments(
        output_dir=str(job.checkpoint_dir),
        report_to="none",
        **{**trainer_defaults(), **fields},
    )


def build_trainer(job: PretrainJob) -> tuple[Any, Any]:
    """The Trainer for ``job`` with its model, data and callbacks, and the tokenizer."""
    from transformers import AutoTokenizer, Trainer, set_seed

    from llm_pipeline.training.checkpoints import CompleteCheckpoints, SameWeightsOnEveryRank
    from llm_pipeline.training.throughput import ThroughputCallback, default_peak_flops
    from llm_pipeline.training.tracking import MlflowMetricsCallback

    arguments = training_arguments(job, evaluates=job.eval_file is not None)
    set_seed(arguments.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(job.tokenizer_dir))
    model = build_model(job, tokenizer)
    train = block_dataset(job.train_file, tokenizer, job.block_size)
    evaluation = block_dataset(job.eval_file, tokenizer, job.block_size) if job.eval_file else None
    precision = "bf16" if arguments.bf16 else "fp16" if arguments.fp16 else "fp32"
    logger.info(
        "Pretraining a %.2fM-parameter %s in %s on %d blocks of %d tokens",
        model.num_parameters() / 1e6,
        "starting model" if job.starting_model_dir else job.architecture,
        precision,
        len(train),
        job.block_size,
    )
    peak = job.peak_flops_per_device or default_peak_flops()
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        # Throughput adds its numbers to the logs, so it comes before whatever reports them.
        callbacks=[
            ThroughputCallback(job.block_size, peak),
            MlflowMetricsCallback(job.metric_prefix),
            CompleteCheckpoints(),
            SameWeightsOnEveryRank(),
        ],
    )
    return trainer, tokenizer


def run(job: PretrainJob) -> None:
    from llm_pipeline.training.checkpoints import resumable_checkpoint

    trainer, tokenizer = build_trainer(job)
    trainer.train(resume_from_checkpoint=resumable_checkpoint(job.checkpoint_dir))
    save_model_folder(trainer, tokenizer, job, job.output_dir)


@record_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(PretrainJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
