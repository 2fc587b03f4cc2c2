"""Speed probe for near-duplicate and leakage detection: MB/s at 1x and 4x data, and scaling.

Documents are random sentences from a synthetic word list (~2 KB each); about 5% are planted
near-duplicates made by changing a few words of an earlier original. The baseline, measured in
the same run on the same texts, is splitting them into words with ``re`` alone; the scaling
ratio printed is time(4x) / time(1x), ideally about 4. Times are the least CPU time of a few
runs (all single-threaded), which a busy shared machine disturbs less than wall time.

    .venv/bin/python bench/near_duplicates_speed.py [--megabytes 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from llm_pipeline.hygiene.near_duplicates import (
    NearDuplicateConfig,
    find_near_duplicates,
    leaked_ngrams_index,
    minhash_signatures,
)
from llm_pipeline.parameters import load_parameters

DOCUMENT_CHARS = 2000
WORD = re.compile(r"\w+")


def word_list(rng: random.Random, size: int = 30_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyzéü"
    return ["".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(size)]


def document(rng: random.Random, vocabulary: list[str]) -> str:
    sentences, size = [], 0
    while size < DOCUMENT_CHARS:
        sentence = " ".join(rng.choices(vocabulary, k=rng.randint(5, 25))).capitalize() + ". "
        sentences.append(sentence)
        size += len(sentence)
    return "".join(sentences)


def edited(rng: random.Random, text: str, vocabulary: list[str], changes: int = 3) -> str:
    tokens = text.split(" ")
    for position in rng.sample(range(len(tokens)), changes):
        tokens[position] = rng.choice(vocabulary)
    return " ".join(tokens)


def corpus(rng: random.Random, megabytes: float, vocabulary: list[str]) -> tuple[list[str], int]:
    """Documents totalling ``megabytes``, about 5% of them edited copies of earlier originals."""
    documents: list[str] = []
    originals: list[str] = []
    planted, size = 0, 0
    while size < megabytes * 1e6:
        if originals and rng.random() < 0.05:
            documents.append(edited(rng, rng.choice(originals), vocabulary))
            planted += 1
        else:
            originals.append(document(rng, vocabulary))
            documents.append(originals[-1])
        size += len(documents[-1])
    return documents, planted


def megabytes_of(texts: list[str]) -> float:
    return sum(map(len, texts)) / 1e6


def cpu_seconds(function, *args) -> tuple[float, object]:
    start = time.process_time()
    result = function(*args)
    return time.process_time() - start, result


def tokenize_with_re(texts: list[str]) -> int:
    """The baseline: only splitting into lowercased words with ``re``, nothing else."""
    return sum(len(WORD.findall(text.lower())) for text in texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    vocabulary = word_list(rng)
    config = NearDuplicateConfig.model_validate(load_parameters()["ingest"]["near_duplicates"])
    minhash_signatures(["warm up the word-character table"], config)
    workloads = {}
    for scale in (1, 4):
        texts, planted = corpus(rng, args.megabytes * scale, vocabulary)
        validation = [edited(rng, rng.choice(texts), vocabulary)[:600] for _ in range(2000)]
        validation += [document(rng, vocabulary)[:600] for _ in range(2000)]
        workloads[scale] = (texts, planted, validation)

    # Sizes are interleaved within each round so that load from elsewhere hits both alike.
    seconds: dict[tuple[str, int], float] = {}
    results: dict[tuple[str, int], object] = {}
    for _ in range(args.repeats):
        for scale, (texts, _, validation) in workloads.items():
            for name, function, function_args in (
                ("baseline", tokenize_with_re, (texts,)),
                ("find_near_duplicates", find_near_duplicates, (texts, config)),
                ("leaked_ngrams_index", leaked_ngrams_index, (texts, validation)),
            ):
                elapsed, results[name, scale] = cpu_seconds(function, *function_args)
                seconds[name, scale] = min(seconds.get((name, scale), elapsed), elapsed)

    for scale, (texts, planted, _) in workloads.items():
        size = megabytes_of(texts)
        baseline = seconds["baseline", scale]
        print(f"{scale}x: {len(texts)} docs, {size:.1f} MB")
        print(f"  baseline re.findall(r'\\w+', text.lower()): {size / baseline:.1f} MB/s")
        found = {
            "find_near_duplicates": f"{len(results['find_near_duplicates', scale])} found / "
            f"{planted} planted near-duplicates",
            "leaked_ngrams_index": f"{len(results['leaked_ngrams_index', scale])} of 4000 "
            "validation texts leaking / 2000 planted",
        }
        for name, outcome in found.items():
            elapsed = seconds[name, scale]
            print(
                f"  {name}: {elapsed:.2f} s, {size / elapsed:.1f} MB/s "
                f"({baseline / elapsed:.2f}x the baseline), {outcome}"
            )
    for name in ("baseline", "find_near_duplicates", "leaked_ngrams_index"):
        ratio = seconds[name, 4] / seconds[name, 1]
        print(f"{name}: time(4x) / time(1x) = {ratio:.2f} (at most 4.5 wanted)")


if __name__ == "__main__":
    main()
