"""The default fine-tune's step on CPU: training tokens per second of LoRA on
SmolLM2-135M-Instruct with ``conf/base``'s ``finetune`` settings (packed rows, the project's LM
head and packed attention, bf16 autocast where the CPU has bf16 units) against the same with the
two settings it had before, in one run:

- ``lora_dropout: 0.05``: PEFT then draws a dropout mask over the input of every adapted layer
  (7 per block, 210 in SmolLM2) in every forward; on 2 CPU cores that tripled the forward;
- activations recomputed in the backward pass (TRL's configs default to
  ``gradient_checkpointing=True``), which a 135M model on a CPU with GBs to spare does not need.

    .venv/bin/python bench/lora_step.py [--model FOLDER] [--steps 6] [--rounds 2]

Each round trains a fresh copy of the model for ``--steps`` steps each way, alternating; the best
round of each counts. The last line is the ratio now / before (above 1: the defaults are faster).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_step import bench_arguments, sft_settings, train_once, training_chats

BEFORE = {"lora": {"lora_dropout": 0.05}, "sft": {"activation_checkpointing": True}}


def main(argv: list[str] | None = None) -> int:
    import yaml

    args, model_dir = bench_arguments(argv, __doc__.splitlines()[0])
    conf = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_finetune.yml"
    lora = yaml.safe_load(conf.read_text(encoding="utf-8"))["finetune"]["lora"]
    chats = training_chats()
    best = {"before": 0.0, "now": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        settings = sft_settings(args.steps, Path(tmp))
        variants = {
            "before": ({**settings, **BEFORE["sft"]}, {**lora, **BEFORE["lora"]}),
            "now": (settings, lora),
        }
        print(f"model {model_dir}, {len(chats)} chats, {args.steps} LoRA steps a round", flush=True)
        print(f"precision bf16={settings.get('bf16')}", flush=True)
        for name, (sft, adapters) in variants.items():
            recompute = sft.get("activation_checkpointing", True)
            print(f"{name}: lora_dropout {adapters['lora_dropout']}, recompute {recompute}")
        for round_number in range(1, args.rounds + 1):
            for name, (sft, adapters) in variants.items():
                speed = train_once(model_dir, chats, sft, ours=True, lora=adapters)
                best[name] = max(best[name], speed)
                print(f"round {round_number} {name}: {speed:.0f} training tokens/s", flush=True)
    print(f"before: {best['before']:.0f} tokens/s")
    print(f"now (conf/base): {best['now']:.0f} tokens/s")
    print(f"ratio now/before: {best['now'] / best['before']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
