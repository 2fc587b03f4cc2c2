"""Supervised fine-tuning on chat conversations with TRL's SFTTrainer.

    python -m llm_pipeline.training.sft --config job.yaml
    torchrun --nproc-per-node 2 -m llm_pipeline.training.sft --config job.yaml

Keys under ``sft:`` are ``trl.SFTConfig`` fields, under ``lora:`` ``peft.LoraConfig`` fields and
under ``prompt_tuning:`` ``peft.PromptTuningConfig`` fields (``task_type`` is ours to set). The
data are JSON Lines with ``messages``.

What ``method`` saves (``training.models.load_causal_lm`` loads all three):
- ``full``: the fine-tuned model, a plain Hugging Face folder.
- ``lora``: the adapter merged into the base weights, also a plain folder.
- ``prompt_tuning``: a PEFT adapter folder (the soft prompt and the tokenizer) whose
  ``adapter_config.json`` names the base model by absolute path or hub id.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.process_exit import exit_without_teardown
from llm_pipeline.training.jobs import (
    causal_lm_peft_config,
    checked_fields,
    read_job,
    record_errors,
    save_model_folder,
    trainer_defaults,
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
    method: Literal["full", "lora", "prompt_tuning"] = "full"
    sft: dict[str, Any] = Field(default_factory=dict)
    lora: dict[str, Any] = Field(default_factory=dict)
    prompt_tuning: dict[str, Any] = Field(default_factory=dict)
    # How the model is loaded (models.model_init_kwargs): dtype, attn_implementation,
    # quantization_config.
    model_init_kwargs: dict[str, Any] = Field(default_factory=dict)
    metric_prefix: str = "sft"


def read_conversations(path: Path) -> Any:
    """A ``datasets.Dataset`` with one ``messages`` list a row."""
    from datasets import Dataset

    with path.open(encoding="utf-8") as handle:
        rows = [{"messages": json.loads(line)["messages"]} for line in handle if line.strip()]
    return Dataset.from_list(rows)


def peft_config(job: SFTJob) -> Any:
    """The PEFT config for ``job.method`` from its own section, or None for full fine-tuning."""
    from peft import LoraConfig, PromptTuningConfig

    if job.method == "full":
        return None
    config_class, fields = {
        "lora": (LoraConfig, job.lora),
        "prompt_tuning": (PromptTuningConfig, job.prompt_tuning),
    }[job.method]
    return causal_lm_peft_config(config_class, fields, job.method)


def sft_arguments(job: SFTJob) -> dict[str, Any]:
    """The SFTConfig fields for ``job``: the hardware's precision and the launch's ddp_timeout,
    then ``job.sft``."""
    from trl import SFTConfig

    fields = {**trainer_defaults(), **checked_fields(SFTConfig, job.sft, "sft")}
    if job.method == "prompt_tuning" and (fields.get("packing") or fields.get("padding_free")):
        # PEFT puts one soft prompt before a whole packed row and drops its position_ids:
        # only the first conversation would see the prompt, and boundaries would shift.
        logger.warning("Prompt tuning trains on padded batches: ignoring sft.packing/padding_free")
        fields.update(packing=False, padding_free=False)
    return fields


def starting_model_path(job: SFTJob) -> str:
    """``model_dir`` as an absolute path when it is a local folder (adapters record it)."""
    return str(job.model_dir.resolve()) if job.model_dir.exists() else str(job.model_dir)


def mark_assistant_turns(tokenizer: Any) -> None:
    """Give a ChatML template that TRL cannot patch the project's marked ChatML template.

    Assistant-only loss needs ``{% generation %}`` markers; TRL adds them to the templates it
    knows and refuses the rest (SmolLM2's, for one). The saved model keeps the new template.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    from llm_pipeline.training.tokenizer import CHAT_END, CHAT_START, CHAT_TEMPLATE

    template = tokenizer.chat_template or ""
    if has_generation_markers(template):
        return
    try:
        get_training_chat_template(tokenizer)
        return
    except ValueError:
        if CHAT_START not in template or CHAT_END not in template:
            raise ValueError(
                "sft.assistant_only_loss needs a chat template that marks assistant turns, and "
                "this model's template is neither marked, nor one TRL can mark, nor ChatML. "
                "Set sft.assistant_only_loss: false or give the tokenizer a marked template."
            ) from None
    logger.warning("Using the project's ChatML template: the model's has no assistant markers")
    tokenizer.chat_template = CHAT_TEMPLATE


def count_parameters(model: Any) -> tuple[int, int]:
    """Trainable and total parameters, counted as PEFT counts them."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    return (
        sum(p.numel() for p in model.parameters() if p.requires_grad),
        sum(p.numel() for p in model.parameters()),
    )


def run(job: SFTJob) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llm_pipeline.training.answer_loss import use_label_positions_head
    from llm_pipeline.training.attention import use_packed_sdpa
    from llm_pipeline.training.checkpoints import (
        CompleteCheckpoints,
        SameWeightsOnEveryRank,
        resumable_checkpoint,
    )
    from llm_pipeline.training.models import model_init_kwargs
    from llm_pipeline.training.tracking import MlflowMetricsCallback

    arguments = SFTConfig(
        output_dir=str(job.checkpoint_dir), report_to="none", **sft_arguments(job)
    )
    start = starting_model_path(job)
    tokenizer = AutoTokenizer.from_pretrained(start)
    if arguments.assistant_only_loss:
        mark_assistant_turns(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(
        start, **model_init_kwargs(job.model_init_kwargs, "finetune")
    )
    if arguments.packing or arguments.padding_free:
        use_packed_sdpa(model)
    train = read_conversations(job.train_file)
    evaluation = read_conversations(job.eval_file) if job.eval_file else None
    logger.info("Fine-tuning %s (%s) on %d conversations", start, job.method, len(train))
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config(job),
        callbacks=[
            MlflowMetricsCallback(job.metric_prefix),
            CompleteCheckpoints(),
            SameWeightsOnEveryRank(),
        ],
    )
    use_label_positions_head(trainer, "sft")
    trainable, total = count_parameters(trainer.model)
    logger.info("Trainable parameters: %d of %d (%s)", trainable, total, job.method)
    trainer.train(resume_from_checkpoint=resumable_checkpoint(job.checkpoint_dir))
    # Later stages and the registry get a plain model: LoRA's adapters are folded into the
    # starting model loaded anew in fp32 (right also when it trained sharded or in 4 bits).
    merge_into = start if job.method == "lora" else None
    save_model_folder(trainer, tokenizer, job, job.output_dir, merge_into=merge_into)


@record_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(SFTJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
