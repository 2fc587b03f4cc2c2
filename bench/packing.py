"""Packing: useful (non-padding) tokens per second of SFT with packed, padding-free batches
against padded batches, same model, data and SFTConfig otherwise, in one run.

    .venv/bin/python bench/packing.py [--conversations 192] [--batch-size 8] [--packed-rows 4]

Conversation lengths follow a log-normal distribution (most short, a long tail), as chat logs
do. A padded batch holds ``--batch-size`` conversations padded to the longest; a packed one
``--packed-rows`` rows of ``--max-length`` tokens: about as many token positions, so about the
same memory. Both runs go through TRL's SFTTrainer, its dataset preparation and its collator;
useful tokens are counted in the very batches that trainer builds. Prints both throughputs and,
as its last line, the ratio packed / padded (goal: at least 1.5).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import WORDS


def conversations(count: int, seed: int) -> list[dict]:
    """Chats whose lengths (in words) are log-normal: median ~60, a tail past 400."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = min(450, max(8, int(rng.lognormvariate(4.1, 0.8))))
        question = " ".join(rng.choices(WORDS, k=max(3, words // 4)))
        answer = " ".join(rng.choices(WORDS, k=words - words // 4))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def build_model(folder: Path) -> Path:
    """Two layers shaped like SmolLM2-135M's (hidden 576, 9 heads, 3 key/value heads) and a
    byte-level BPE tokenizer, saved as a folder: the proportions of attention and matrix products
    of a real small model, at two layers' cost."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llm_pipeline.parameters import load_parameters
    from llm_pipeline.training.tokenizer import TokenizerConfig, train_tokenizer

    texts = [" ".join(WORDS)] * 4
    train_tokenizer(
        texts,
        TokenizerConfig.model_validate(
            {
                **load_parameters("tiny")["pretrain"]["tokenizer"],
                "vocab_size": 512,
                "min_frequency": 1,
            }
        ),
        folder,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=2,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def useful_tokens(batches) -> int:
    """Tokens that are text, not padding: the attention mask, or, padding-free, the positions
    that are not the collator's trailing pad (whose position ids restart at 0)."""
    total = 0
    for batch in batches:
        if "attention_mask" in batch:
            total += int(batch["attention_mask"].sum())
        else:
            total += int(batch["input_ids"].numel())
    return total


def measure(model_dir: Path, data_file: Path, sft: dict, workdir: Path) -> tuple[float, int]:
    """Useful tokens per second of one epoch through the SFT trainer, and the useful tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llm_pipeline.training.attention import use_packed_sdpa
    from llm_pipeline.training.sft import read_conversations

    arguments = SFTConfig(
        output_dir=str(workdir),
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        num_train_epochs=1,
        learning_rate=1e-3,
        seed=0,
        bf16=False,
        fp16=False,
        **sft,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if arguments.packing:
        use_packed_sdpa(model)  # as training/sft.py does for packed batches
    trainer = SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=read_conversations(data_file),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    tokens = useful_tokens(trainer.get_train_dataloader())
    started = time.perf_counter()
    trainer.train()
    return tokens / (time.perf_counter() - started), tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--packed-rows", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    common = {"max_length": args.max_length, "assistant_only_loss": True}
    padding = {**common, "per_device_train_batch_size": args.batch_size}
    packing = {**common, "per_device_train_batch_size": args.packed_rows, "packing": True}
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as tmp:
        root = Path(tmp)
        model_dir = build_model(root / "model")
        data_file = root / "conversations.jsonl"
        rows = conversations(args.conversations, seed=1)
        data_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
        padded, padded_tokens = measure(model_dir, data_file, padding, root / "padded")
        packed, packed_tokens = measure(model_dir, data_file, packing, root / "packed")
    print(f"padded batches: {padded:,.0f} useful tokens/s ({padded_tokens:,} tokens)")
    print(f"packed, padding-free batches: {packed:,.0f} useful tokens/s ({packed_tokens:,} tokens)")
    print(f"packed / padded useful tokens per second: {packed / padded:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
