"""The index's own sentence encoder: MiniLM fine-tuned on the organisation's past questions.

MiniLM as shipped places questions by their words and topic, not by what answers them: "can I
send back something I got three weeks ago?" lands as near the refund-timing questions as the
return-window ones. The training conversations say which questions share an answer: the keys
of one passage (``index.link_questions``). A few steps of contrastive fine-tuning pull those
together and push the others apart: each step takes ``batch_size`` passages' key groups, two
keys of each, and trains each key to pick its partner among the batch's other keys (symmetric
InfoNCE at ``temperature``, in-batch negatives, as sentence-transformers'
MultipleNegativesRankingLoss does).

Only the training conversations are used, so the held-out questions stay held out; the
evaluate stage's similarity and answer accuracy keep MiniLM as shipped, so the metric does not
move with the retriever. The tuned encoder is saved inside the index folder, so the registered
model, which carries its index, searches with it.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

from llm_pipeline.retrieval.config import EncoderTuningConfig

logger = logging.getLogger(__name__)

# Files of a sentence-transformers folder that hold the weights: written anew after tuning.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def key_groups(keys: list[dict]) -> list[list[str]]:
    """The texts of the keys of each passage that has at least two, by passage order."""
    by_passage: dict[int, list[str]] = {}
    for key in keys:
        texts = by_passage.setdefault(int(key["passage"]), [])
        if key["text"] not in texts:
            texts.append(key["text"])
    return [by_passage[passage] for passage in sorted(by_passage) if len(by_passage[passage]) > 1]


def tune_encoder(
    source: str | Path, groups: list[list[str]], config: EncoderTuningConfig, target: Path
) -> dict[str, Any]:
    """Fine-tune the sentence-transformers folder ``source`` on ``groups`` (texts that share an
    answer) and write it to ``target``; returns what was done (steps, last loss, seconds).

    The folder's own modules encode during tuning, its pooling (mean for the packaged
    all-MiniLM-L6-v2, CLS or another for other folders) included, each embedding at unit
    length as the index encodes; so what is tuned is what the index searches with. The tuned
    folder holds the source's files with the tuned weights and modules written over them."""
    import torch
    from sentence_transformers import SentenceTransformer

    if len(groups) < 2:
        raise ValueError(
            f"Tuning the retrieval encoder needs questions of at least 2 passages, got "
            f"{len(groups)}: set retrieval_encoder.steps to 0 for too few past questions."
        )
    torch.manual_seed(config.seed)
    sampler = random.Random(config.seed)
    model = SentenceTransformer(str(source), device="cpu")
    # Tuning truncates at config.max_length; the saved folder encodes as the source did.
    shipped_length, model.max_seq_length = model.max_seq_length, config.max_length
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)

    def embed(texts: list[str]) -> Any:
        found = model(model.tokenize(texts))["sentence_embedding"]
        return torch.nn.functional.normalize(found, dim=-1)

    started, loss = time.perf_counter(), None
    for _ in range(config.steps):
        chosen = sampler.sample(groups, min(config.batch_size, len(groups)))
        pairs = [sampler.sample(group, 2) for group in chosen]
        logits = embed([p[0] for p in pairs]) @ embed([p[1] for p in pairs]).T
        logits = logits / config.temperature
        target_rows = torch.arange(len(pairs))
        loss = (
            torch.nn.functional.cross_entropy(logits, target_rows)
            + torch.nn.functional.cross_entropy(logits.T, target_rows)
        ) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*_WEIGHT_FILES), dirs_exist_ok=False
    )
    model.eval()
    model.max_seq_length = shipped_length
    model.save(str(target), create_model_card=False)
    done = {
        "steps": config.steps,
        "groups": len(groups),
        "last_loss": None if loss is None else round(loss.item(), 4),
        "seconds": round(seconds, 1),
    }
    logger.info(
        "Tuned the retrieval encoder on the keys of %d passages: %d steps in %.0f s, last loss %s",
        len(groups),
        config.steps,
        seconds,
        done["last_loss"],
    )
    return done
