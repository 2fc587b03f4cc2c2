"""Padding-free attention on SDPA: each packed conversation attends to itself only."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
import yaml
from support import PROJECT_ROOT, build_tiny_model

from llm_pipeline.training.attention import PACKED_SDPA, use_packed_sdpa
from llm_pipeline.training.sft import SFTJob, read_conversations, sft_arguments


@pytest.fixture
def grouped_query_model(tmp_path):
    """Two layers whose 4 query heads share 2 key/value heads, as in SmolLM2 and Llama 3."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(
        tmp_path / "model", num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    return model, AutoTokenizer.from_pretrained(folder)


def conversations(path):
    """Two-turn chats of different lengths, as JSON Lines."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Where is order " + "12" * (1 + i % 9) + "?"},
                {"role": "assistant", "content": "It ships today." + " Thanks." * (i % 4)},
            ]
        }
        for i in range(24)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def default_sft_section() -> dict:
    """``finetune.sft`` as conf/base ships it (packed, padding-free)."""
    text = (PROJECT_ROOT / "conf/base/parameters_finetune.yml").read_text()
    return yaml.safe_load(text)["finetune"]["sft"]


def packed_batch(tokenizer, tmp_path) -> dict:
    """The first batch TRL's SFT trainer builds with the default (packed) settings."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    train_file = conversations(tmp_path / "conv.jsonl")
    job = SFTJob(
        train_file=train_file,
        model_dir=tmp_path,
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ck",
        sft={**default_sft_section(), "max_length": 128, "per_device_train_batch_size": 4},
    )
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=8,
                                         intermediate_size=8, num_hidden_layers=1,
                                         num_attention_heads=1, num_key_value_heads=1))  # fmt: skip
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(output_dir=str(job.checkpoint_dir), report_to="none", **sft_arguments(job)),
        train_dataset=read_conversations(train_file),
        eval_dataset=read_conversations(train_file),
        processing_class=tokenizer,
    )
    return next(iter(trainer.get_train_dataloader()))


def one_by_one(model, batch: dict) -> torch.Tensor:
    """Logits of every packed conversation run through the model on its own."""
    cuts = batch["cu_seq_lens_q"].tolist()
    ids = batch["input_ids"]
    with torch.no_grad():
        return torch.cat([model(input_ids=ids[:, a:b]).logits for a, b in pairwise(cuts)], dim=1)


def test_a_packed_row_gives_what_each_conversation_gives_alone(grouped_query_model, tmp_path):
    model, tokenizer = grouped_query_model
    batch = packed_batch(tokenizer, tmp_path)
    assert batch["input_ids"].shape[0] == 1 and len(batch["cu_seq_lens_q"]) > 3
    alone = one_by_one(model, batch)

    use_packed_sdpa(model)
    assert model.config._attn_implementation == PACKED_SDPA
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    packed_grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    torch.testing.assert_close(out.logits.detach(), alone, atol=1e-5, rtol=1e-4)

    # The same loss and gradient as the padded batch of those conversations, masked as usual.
    cuts = batch["cu_seq_lens_q"].tolist()
    rows = list(pairwise(cuts))
    width = max(b - a for a, b in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (a, b) in enumerate(rows):
        ids[i, : b - a] = batch["input_ids"][0, a:b]
        labels[i, : b - a] = batch["labels"][0, a:b]
        mask[i, : b - a] = 1
    model.zero_grad()
    padded = model(input_ids=ids, attention_mask=mask, labels=labels)
    padded.loss.backward()
    torch.testing.assert_close(out.loss, padded.loss, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        packed_grad, model.model.layers[0].self_attn.q_proj.weight.grad, atol=1e-6, rtol=1e-3
    )


def test_other_kernels_are_left_alone(grouped_query_model):
    model, _ = grouped_query_model
    model.config._attn_implementation = "eager"
    use_packed_sdpa(model)
    assert model.config._attn_implementation == "eager"
