"""Reinforcement learning from the reward model with TRL's GRPOTrainer or RLOOTrainer.

    python -m llm_pipeline.training.rl --config job.yaml
    torchrun --nproc-per-node 2 -m llm_pipeline.training.rl --config job.yaml

The policy starts from the fine-tuned model and answers the preference prompts; each answer is
scored by the trained reward model plus the rule rewards that ``rules`` switches on
(``training.rewards``), weighted by ``reward_model_weight`` and each rule's ``weight``. A KL
penalty (``beta`` > 0) against a frozen copy of the fine-tuned model keeps the policy from
drifting into text that only fools the reward model; with ``lora`` (``peft.LoraConfig`` fields)
only adapters train, the reference is the policy with its adapters disabled (no second copy),
and the adapters are folded into the fine-tuned model when done. ``model_init_kwargs`` is how
the trainer loads the policy (as for DPO). ``algorithm`` picks the trainer; keys under
``grpo:`` are ``trl.GRPOConfig`` fields, under ``rloo:`` ``trl.RLOOConfig`` fields. TRL logs the
mean reward (``reward``, and ``rewards/<function>/mean`` per function), the KL (``kl``) and the
completion length (``completions/mean_length``) at every logging step.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_pipeline.process_exit import exit_without_teardown
from llm_pipeline.training.jobs import (
    checked_fields,
    read_job,
    record_errors,
    save_model_folder,
    trainer_defaults,
)
from llm_pipeline.training.rewards import RuleRewards, rule_reward_functions

logger = logging.getLogger(__name__)


class RLJob(BaseModel):
    """One RL run: the policy's start, the reward model, the prompts and the trainer config."""

    model_config = ConfigDict(extra="forbid")

    train_file: Path
    eval_file: Path | None = None
    model_dir: Path
    reward_model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    algorithm: Literal["grpo", "rloo"] = "grpo"
    reward_model_weight: float = 1.0
    rules: RuleRewards = Field(default_factory=RuleRewards)
    grpo: dict[str, Any] = Field(default_factory=dict)
    rloo: dict[str, Any] = Field(default_factory=dict)
    # peft.LoraConfig fields (task_type is set for you); None: every weight trains.
    lora: dict[str, Any] | None = None
    # How the policy is loaded (models.model_init_kwargs).
    model_init_kwargs: dict[str, Any] = Field(default_factory=dict)
    metric_prefix: str = "rl"


class RewardModelScore:
    """The reward model as a TRL reward function, scoring exactly as the evaluation does."""

    __name__ = "reward_model"  # TRL logs it as rewards/reward_model/mean

    def __init__(self, tokenizer: Any):
        # Set once the trainer says how the model is placed (load_reward_model).
        self.model: Any = None
        self.tokenizer = tokenizer

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float]:
        from llm_pipeline.training.reward import score_conversations

        conversations = [
            prompt + completion for prompt, completion in zip(prompts, completions, strict=True)
        ]
        return score_conversations(self.model, self.tokenizer, conversations)


def placed_like_trl(model: Any, trainer: Any) -> Any:
    """The reward model placed as TRL places a reward model of its own (GRPOTrainer): under
    DeepSpeed ZeRO-3 sharded by DeepSpeed, under FSDP sharded over the ranks by the trainer's
    FSDP plugin (each rank holds a share, gathered layer by layer for the forward), otherwise
    whole on the trainer's device; in evaluation mode either way. Every rank scores the same
    number of completions in the same batches, so the sharded forwards meet."""
    if trainer.is_deepspeed_enabled:
        from trl.models import prepare_deepspeed

        return prepare_deepspeed(model, trainer.accelerator)
    if trainer.is_fsdp_enabled:
        from trl.models import prepare_fsdp

        return prepare_fsdp(model, trainer.accelerator)
    return model.to(trainer.accelerator.device).eval()


def load_reward_model(folder: Path, trainer: Any) -> Any:
    """The reward model in ``folder``, placed for ``trainer`` (``placed_like_trl``). Under FSDP2
    on several ranks only rank 0 reads the weights: the others build the model's shape without
    memory (parameters on the meta device, buffers computed from the config), every rank shards
    it, and rank 0 sends each tensor to the others, which keep their share. A 70B reward model
    on 8 ranks of a machine is then read into host memory once, not eight times."""
    import torch.distributed as dist
    from transformers import AutoConfig, AutoModelForSequenceClassification

    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    shared_out = (
        trainer.is_fsdp_enabled
        and getattr(plugin, "fsdp_version", 1) == 2
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )
    if not shared_out:
        whole = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
        return placed_like_trl(whole, trainer)
    from accelerate import init_empty_weights
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if dist.get_rank() == 0:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
        full = model.state_dict()
    else:
        config = AutoConfig.from_pretrained(str(folder), num_labels=1)
        with init_empty_weights(include_buffers=False):
            model = AutoModelForSequenceClassification.from_config(config)  # its saved dtype
        full = {}
    model = placed_like_trl(model, trainer)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)
    return model.eval()


def read_prompts(path: Path) -> Any:
    """The prompts of preference pairs as conversations (a user turn, after the pair's system
    turn when it has one), each once."""
    from datasets import Dataset

    from llm_pipeline.training.dpo import prompt_turns

    prompts: list[list[dict[str, str]]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                prompt = prompt_turns(json.loads(line))
                if prompt not in prompts:
                    prompts.append(prompt)
    return Dataset.from_list([{"prompt": prompt} for prompt in prompts])


def trainer_classes(algorithm: str) -> tuple[type, type]:
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    return {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}[algorithm]


def rl_arguments(job: RLJob, config_class: type, reward_weights: list[float]) -> dict[str, Any]:
    """The trainer config fields: the hardware's precision, the job's section, the weights."""
    section = f"rl.{job.algorithm}"
    fields = checked_fields(config_class, getattr(job, job.algorithm), section)
    if "reward_weights" in fields:
        raise ValueError(
            f"Remove '{section}.reward_weights': the weights come from rl.reward_model_weight and "
            "each rule's weight under rl.rules."
        )
    beta = fields.get("beta", config_class.beta)
    if not beta > 0:
        raise ValueError(
            f"{section}.beta is {beta}: it must be above 0, since the KL penalty against the "
            "fine-tuned model is what keeps the policy from gaming the reward model."
        )
    return {**trainer_defaults(), **fields, "reward_weights": reward_weights}


def refuse_soft_prompt(model_dir: Path) -> None:
    from llm_pipeline.training.models import is_adapter_folder

    if is_adapter_folder(model_dir):
        raise ValueError(
            f"{model_dir} is a soft prompt (finetune.method: prompt_tuning), which RL cannot train "
            "here. Use align.method: dpo, or fine-tune with finetune.method full or lora."
        )


def run(job: RLJob) -> None:
    from transformers import AutoTokenizer

    from llm_pipeline.training.checkpoints import (
        CompleteCheckpoints,
        SameWeightsOnEveryRank,
        resumable_checkpoint,
    )
    from llm_pipeline.training.dpo import lora_config
    from llm_pipeline.training.models import model_init_kwargs
    from llm_pipeline.training.tracking import MlflowMetricsCallback

    refuse_soft_prompt(job.model_dir)
    config_class, trainer_class = trainer_classes(job.algorithm)
    judge = RewardModelScore(AutoTokenizer.from_pretrained(str(job.reward_model_dir)))
    rules = rule_reward_functions(job.rules)
    functions = [judge, *(function for function, _ in rules)]
    weights = [job.reward_model_weight, *(weight for _, weight in rules)]
    arguments = config_class(
        output_dir=str(job.checkpoint_dir),
        report_to="none",
        model_init_kwargs=model_init_kwargs(job.model_init_kwargs, "align"),
        **rl_arguments(job, config_class, weights),
    )
    lora = lora_config(job.lora, "align.lora")
    tokenizer = AutoTokenizer.from_pretrained(str(job.model_dir))
    prompts = read_prompts(job.train_file)
    logger.info(
        "%s from %s on %d prompts, rewards %s weighted %s",
        job.algorithm.upper(),
        job.model_dir,
        len(prompts),
        [getattr(function, "__name__", "?") for function in functions],
        weights,
    )
    trainer = trainer_class(
        # A path: the trainer loads the policy and, from the same folder, its frozen reference
        # (none under LoRA: the policy with its adapters disabled).
        model=str(job.model_dir),
        peft_config=lora,
        reward_funcs=functions,
        args=arguments,
        train_dataset=prompts,
        eval_dataset=read_prompts(job.eval_file) if job.eval_file else None,
        processing_class=tokenizer,
        callbacks=[
            MlflowMetricsCallback(job.metric_prefix),
            CompleteCheckpoints(),
            SameWeightsOnEveryRank(),
        ],
    )
    judge.model = load_reward_model(job.reward_model_dir, trainer)
    trainer.train(resume_from_checkpoint=resumable_checkpoint(job.checkpoint_dir))
    merge_into = job.model_dir.resolve() if lora is not None else None
    save_model_folder(trainer, tokenizer, job, job.output_dir, merge_into=merge_into)


@record_errors
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(read_job(RLJob, argv, __doc__ or ""))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
