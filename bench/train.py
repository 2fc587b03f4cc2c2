"""Pretraining throughput: tokens per second of the pretraining entrypoint's Trainer against a bare
PyTorch training loop of the same model, data, batch and precision, in one run.

    .venv/bin/python bench/train.py [--steps 20] [--warmup 2] [--threads N]

The entrypoint side is the Trainer that ``llm_pipeline.training.pretrain.build_trainer`` makes
from a job, with every callback the real run has (throughput, MLflow, checkpoints). The bare
loop trains the same freshly seeded model on the same packed blocks (full batches on both sides)
with fused AdamW, the same warmup + cosine schedule, the same gradient clipping and no key/value
cache, in fp32 as on any CPU. The two run in lockstep, one bare step each time the Trainer ends
one, so on a shared machine both see the same load; each is timed over the same ``--steps``
optimizer steps after ``--warmup`` untimed ones.

Model: a 4-layer Llama, hidden size 256, a 2048-token vocabulary, blocks of 256 tokens, batches
of 8 (3.7M parameters that multiply every token, ~50 GFLOP a step). On 2 idle CPU cores a step
takes about half a second, so the compute of a step dominates the few milliseconds of Python
around it, as it does for a real model on a GPU; a model that steps in milliseconds would
measure only the overheads. The whole run takes about half a minute on an idle machine.

Prints both throughputs and, as its last line, the ratio entrypoint / bare loop (goal: >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

MODEL = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}
BLOCK_SIZE = 256
BATCH_SIZE = 8
VOCAB_SIZE = 2048
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
SEED = 7
CLOCK = time.perf_counter


def write_corpus(folder: Path) -> Path:
    """The sample data set's documents as JSON Lines, the file the entrypoint reads."""
    from llm_pipeline.cli.sample_data import generate

    raw = folder / "raw"
    generate(raw, scale="small", seed=13)
    files = sorted(p for p in (raw / "documents").iterdir() if p.suffix in {".md", ".txt"})
    texts = [p.read_text(encoding="utf-8") for p in files]
    path = folder / "documents.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    return path


def make_job(folder: Path, documents: Path, total_steps: int, warmup: int):
    from llm_pipeline.parameters import load_parameters
    from llm_pipeline.training.pretrain import PretrainJob
    from llm_pipeline.training.tokenizer import TokenizerConfig, train_tokenizer

    if not (folder / "tokenizer").exists():
        texts = [json.loads(line)["text"] for line in documents.read_text().splitlines()]
        config = TokenizerConfig.model_validate(
            {
                **load_parameters()["pretrain"]["tokenizer"],
                "vocab_size": VOCAB_SIZE,
                "model_max_length": 1 << 20,
            }
        )
        train_tokenizer(texts, config, folder / "tokenizer")
    return PretrainJob(
        train_file=documents,
        tokenizer_dir=folder / "tokenizer",
        output_dir=folder / "model",
        checkpoint_dir=folder / "checkpoints",
        block_size=BLOCK_SIZE,
        model=MODEL,
        training={
            "max_steps": total_steps,
            "per_device_train_batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "lr_scheduler_type": "cosine",
            "warmup_steps": warmup,
            "weight_decay": WEIGHT_DECAY,
            "max_grad_norm": MAX_GRAD_NORM,
            "logging_steps": 10,
            "save_strategy": "no",
            "seed": SEED,
            "data_seed": SEED,
            "dataloader_num_workers": 0,
            # Full batches only, as the bare loop has: every timed step trains on the same tokens.
            "dataloader_drop_last": True,
            "disable_tqdm": True,
        },
    )


class BareLoop:
    """The same training written as the plain PyTorch loop a user would write by hand."""

    def __init__(self, job, total_steps: int, warmup: int):
        import torch
        from transformers import AutoTokenizer, set_seed

        from llm_pipeline.training.pretrain import block_dataset, build_model

        set_seed(SEED)
        tokenizer = AutoTokenizer.from_pretrained(str(job.tokenizer_dir))
        self.model = build_model(job, tokenizer).train()
        blocks = block_dataset(job.train_file, tokenizer, BLOCK_SIZE)["input_ids"][:]
        self.loader = torch.utils.data.DataLoader(
            blocks, batch_size=BATCH_SIZE, shuffle=True, drop_last=True
        )
        self.batches = iter(self.loader)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=True
        )

        def cosine_with_warmup(step: int) -> float:
            if step < warmup:
                return step / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total_steps - warmup)))

        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cosine_with_warmup)

    def step(self) -> None:
        import torch

        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        # No key/value cache in training, as the Trainer sets it (TrainingArguments.use_cache).
        loss = self.model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)


def step_seconds_in_lockstep(job, total_steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each optimizer step of the entrypoint's Trainer and of the bare loop, which
    takes one step each time the Trainer has taken one: on a shared machine both see the same
    load, which separate runs a minute apart would not."""
    from transformers import TrainerCallback

    from llm_pipeline.training.pretrain import build_trainer

    trainer, _ = build_trainer(job)
    bare = BareLoop(job, total_steps, warmup)
    seconds: dict[str, list[float]] = {"entrypoint": [], "bare loop": []}

    class Lockstep(TrainerCallback):
        resumed = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.resumed = CLOCK()

        def on_step_end(self, args, state, control, **kwargs):
            # The Trainer's step runs from here back to where it resumed after the last bare
            # step: its batch fetching, logging and every other callback are in it.
            paused = CLOCK()
            seconds["entrypoint"].append(paused - self.resumed)
            bare.step()
            self.resumed = CLOCK()
            seconds["bare loop"].append(self.resumed - paused)

    trainer.add_callback(Lockstep())
    trainer.train()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        job = make_job(folder, write_corpus(folder), args.warmup + args.steps, args.warmup)
        seconds = step_seconds_in_lockstep(job, args.warmup + args.steps, args.warmup)
    tokens = args.steps * BATCH_SIZE * BLOCK_SIZE
    speed = {name: tokens / sum(steps[args.warmup :]) for name, steps in seconds.items()}
    print(f"entrypoint (Trainer): {speed['entrypoint']:,.0f} tokens/s")
    print(f"bare PyTorch loop: {speed['bare loop']:,.0f} tokens/s")
    pairs = zip(
        seconds["entrypoint"][args.warmup :], seconds["bare loop"][args.warmup :], strict=True
    )
    steady = statistics.median(bare / entrypoint for entrypoint, bare in pairs)
    print(f"median of the step-by-step ratios (less sensitive to load spikes): {steady:.3f}")
    print(f"ratio entrypoint / bare loop: {speed['entrypoint'] / speed['bare loop']:.3f}")


if __name__ == "__main__":
    main()
