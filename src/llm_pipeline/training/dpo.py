"""Direct preference optimisation with TRL's DPOTrainer on (prompt, chosen, rejected) pairs.

    python -m llm_pipeline.training.dpo --config job.yaml
    torchrun --nproc-per-node 2 -m llm_pipeline.training.dpo --config job.yaml

Keys under ``dpo:`` are ``trl.DPOConfig`` fields. TRL loads the model from its folder with
``model_init_kwargs`` (fp32 weights by default; ``dtype``, ``attn_implementation``, a
``quantization_config`` for QLoRA). Without ``lora`` every weight trains and the reference is a
second, frozen copy that TRL loads the same way. With ``lora`` (``peft.LoraConfig`` fields) only
adapters train and the reference is the same model with its adapters disabled: no second copy
in memory. The adapters are folded into the starting model, loaded anew, when done
(``models.merge_adapter_folder``), so the output is a plain model either way. A soft prompt
(``finetune.method: prompt_tuning``) trains further on its frozen base model, against a frozen
copy of itself that TRL keeps as a second adapter, and is saved as a soft prompt again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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


class DPOJob(BaseModel):
    """One DPO run: the starting model, the preference pairs and the DPOConfig."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    dpo: dict[str, Any] = Field(default_factory=dict)
    # peft.LoraConfig fields (task_type is set for you); None: every weight trains.
    lora: dict[str, Any] | None = None
    # How the model is loaded (models.model_init_kwargs): dtype, attn_implementation,
    # quantization_config.
    model_init_kwargs: dict[str, Any] = Field(default_factory=dict)
    metric_prefix: str = "dpo"


def prompt_turns(pair: dict[str, Any]) -> list[dict[str, str]]:
    """A pair's prompt as chat turns: its user turn, after its ``system`` turn when it has one
    (the passages retrieved for it, when the project grounds its prompts)."""
    system = pair.get("system")
    turns = [{"role": "system", "content": system}] if system else []
    return [*turns, {"role": "user", "content": pair["prompt"]}]


def read_preference_pairs(path: Path) -> Any:
    """Pairs in TRL's conversational preference form: a user turn, two assistant answers."""
    from datasets import Dataset

    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            pair = json.loads(line)
            rows.append(
                {
                    "prompt": prompt_turns(pair),
                    "chosen": [{"role": "assistant", "content": pair["chosen"]}],
                    "rejected": [{"role": "assistant", "content": pair["rejected"]}],
                }
            )
    return Dataset.from_list(rows)


def lora_config(fields: dict[str, Any] | None, section: str, task_type: str = "CAUSAL_LM") -> Any:
    """``peft.LoraConfig`` for a causal LM (``SEQ_CLS``: a reward model) from ``fields``, or
    None without them."""
    if fields is None:
        return None
    from peft import LoraConfig

    return causal_lm_peft_config(LoraConfig, fields, section, task_type)


def run(job: DPOJob) -> None:
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from llm_pipeline.training.answer_loss import use_label_positions_head
    from llm_pipeline.training.checkpoints import (
        CompleteCheckpoints,
        SameWeightsOnEveryRank,
        resumable_checkpoint,
    )
    from llm_pipeline.training.models import (
        is_adapter_folder,
        load_causal_lm,
        model_init_kwargs,
    )
    from llm_pipeline.training.tracking import MlflowMetricsCallback

    soft_prompt = is_adapter_folder(job.model_dir)
    init = model_init_kwargs(job.model_init_kwargs, "align")
    if soft_prompt and "quantization_config" in init:
        raise ValueError(
            "A soft prompt (finetune.method: prompt_tuning) trains further as a soft prompt on "
            "its full-precision base: set align.model_init_kwargs.quantization_config to null."
        )
    if soft_prompt and job.lora:
        # align.lora is on by default; a soft prompt has no weights of its own for LoRA to adapt.
        logger.info(
            "%s is a soft prompt: it trains further as itself, align.lora set aside", job.model_dir
        )
        job = job.model_copy(update={"lora": None})
    fields = {**trainer_defaults(), **checked_fields(DPOConfig, job.dpo, "dpo")}
    if not soft_prompt:
        fields["model_init_kwargs"] = init
    arguments = DPOConfig(output_dir=str(job.checkpoint_dir), report_to="none", **fields)
    tokenizer = AutoTokenizer.from_pretrained(str(job.model_dir))
    # A soft prompt trains further as itself: TRL keeps a frozen copy of the adapter as the
    # reference. A plain model is loaded by TRL from its folder; its reference is the model
    # with its LoRA adapters disabled, or without LoRA a frozen copy TRL loads alike.
    if soft_prompt:
        model = load_causal_lm(job.model_dir, trainable=True, **init)
    else:
        model = str(job.model_dir)
    lora = lora_config(job.lora, "align.lora")
    train = read_preference_pairs(job.train_file)
    evaluation = read_preference_pairs(job.eval_file) if job.eval_file else None
    logger.info(
        "DPO from %s on %d preference pairs (%s)",
        job.model_dir,
        len(train),
        "LoRA, the reference is the model without its adapters" if lora else "every weight",
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        peft_config=lora,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=[
            MlflowMetricsCallback(job.metric_prefix),
            CompleteCheckpoints(),
            SameWeightsOnEveryRank(),
        ],
    )
    use_label_positions_head(trainer, "dpo")
    trainer.train(resume_from_checkpoint=resumable_checkpoint(job.checkpoint_dir))
    if "ref" in getattr(trainer.model, "peft_config", {}):
        trainer.model.delete_adapter("ref")  # TRL's frozen copy: the output is the trained prompt
    merge_into = job.model_dir.resolve() if lora is not None else None
    save_model_folder(trainer, tokenizer, job, job.output_dir, merge_into=merge_into)


@record_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(DPOJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
