"""The pretraining entrypoint in this process on tiny data: both model families, the schedule,
evaluation every N steps, gradient checkpointing, and the throughput it logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support import shop_sentences, tokenizer_config, training_losses

from llm_pipeline.training.pretrain import PretrainJob, build_trainer, run
from llm_pipeline.training.tokenizer import train_tokenizer

MODELS = {
    "llama": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    },
    "gpt2": {"n_embd": 32, "n_inner": 64, "n_layer": 2, "n_head": 2, "n_positions": 64},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A tokenizer and training and validation documents."""
    root = tmp_path_factory.mktemp("corpus")
    texts = shop_sentences()
    train_tokenizer(texts, tokenizer_config(vocab_size=300, min_frequency=1), root / "tokenizer")
    lines = [json.dumps({"text": text}) + "\n" for text in texts]
    (root / "train.jsonl").write_text("".join(lines * 2))
    (root / "validation.jsonl").write_text("".join(lines[::8]))
    return root


def make_job(corpus: Path, output: Path, architecture: str = "llama", **training) -> PretrainJob:
    return PretrainJob(
        train_file=corpus / "train.jsonl",
        eval_file=corpus / "validation.jsonl",
        tokenizer_dir=corpus / "tokenizer",
        output_dir=output / "model",
        checkpoint_dir=output / "checkpoints",
        block_size=32,
        architecture=architecture,
        model=MODELS[architecture],
        training={
            "per_device_train_batch_size": 8,
            "learning_rate": 5e-3,
            "logging_steps": 2,
            "save_strategy": "no",
            "seed": 3,
            "disable_tqdm": True,
            **training,
        },
    )


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "training_log.json").read_text())


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_each_architecture_trains_and_saves_a_loadable_model(corpus, tmp_path, architecture):
    from transformers import AutoModelForCausalLM

    job = make_job(corpus, tmp_path, architecture, max_steps=16)
    run(job)
    losses = training_losses(job.output_dir)
    assert losses[-1] < losses[0] - 0.5
    model = AutoModelForCausalLM.from_pretrained(job.output_dir)
    assert model.config.model_type == architecture
    assert model.config.num_hidden_layers == 2
    # No GPU here: fp32, whatever the hardware default would be elsewhere.
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.float32"


def test_warmup_cosine_and_evaluation_every_n_steps(corpus, tmp_path):
    job = make_job(
        corpus,
        tmp_path,
        max_steps=12,
        logging_steps=1,
        warmup_steps=4,
        lr_scheduler_type="cosine",
        eval_strategy="steps",
        eval_steps=4,
        gradient_accumulation_steps=2,
    )
    run(job)
    entries = history(job.output_dir)
    assert [entry["step"] for entry in entries if "eval_loss" in entry] == [4, 8, 12]
    rates = [entry["learning_rate"] for entry in entries if "loss" in entry]
    peak = rates.index(max(rates))
    # A step logs the rate it used: zero at step 1, the full rate once 4 warm-up steps are done.
    assert peak == 4 and rates[0] == 0 and rates[:5] == sorted(rates[:5])
    assert rates[peak:] == sorted(rates[peak:], reverse=True) and rates[-1] < rates[peak] / 10


def test_a_run_without_validation_documents_trains_without_evaluation(corpus, tmp_path):
    job = make_job(corpus, tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2)
    run(job.model_copy(update={"eval_file": None}))
    entries = history(job.output_dir)
    assert any("loss" in entry for entry in entries)
    assert not any("eval_loss" in entry for entry in entries)


def train_counting_layer_calls(job: PretrainJob) -> tuple[list[float], int]:
    """Losses of a run and how often the MLP of its first decoder layer started forward."""
    trainer, _ = build_trainer(job)
    calls = []
    # The layer's own hooks stay outside the checkpoint and the recomputation stops as soon as
    # it has what backward needs, so count entries into a module inside the layer.
    trainer.model.model.layers[0].mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, len(calls)


def test_activation_checkpointing_recomputes_layers_and_changes_no_result(corpus, tmp_path):
    plain = make_job(corpus, tmp_path / "plain", max_steps=4, logging_steps=1)
    checkpointed = plain.model_copy(
        update={"training": {**plain.training, "activation_checkpointing": True}}
    )
    losses, calls = train_counting_layer_calls(plain)
    checkpointed_losses, checkpointed_calls = train_counting_layer_calls(checkpointed)
    assert calls == 4
    assert checkpointed_calls == 8, "each step should run the layer again in the backward pass"
    assert checkpointed_losses == pytest.approx(losses, rel=1e-5)


def test_tokens_per_second_and_mfu_are_in_every_training_log_entry(corpus, tmp_path):
    job = make_job(corpus, tmp_path, max_steps=4, gradient_accumulation_steps=2)
    run(job.model_copy(update={"peak_flops_per_device": 1e12}))
    logged = [entry for entry in history(job.output_dir) if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert entry["tokens_per_second"] > 0
        assert 0 < entry["mfu"] < 1


def test_without_a_known_peak_mfu_is_left_out_and_the_log_says_so_once(corpus, tmp_path, caplog):
    job = make_job(corpus, tmp_path, max_steps=4)
    with caplog.at_level(logging.INFO, logger="llm_pipeline.training.throughput"):
        run(job)
    logged = [entry for entry in history(job.output_dir) if "loss" in entry]
    assert all(entry["tokens_per_second"] > 0 and "mfu" not in entry for entry in logged)
    assert [r.getMessage() for r in caplog.records].count(
        "MFU is not logged: the peak FLOPs of this hardware are unknown "
        "(set peak_flops_per_device to log it)."
    ) == 1


def test_model_flops_count_the_output_projection_whether_tied_or_not():
    from transformers import LlamaConfig, LlamaForCausalLM

    from llm_pipeline.training.throughput import model_flops_per_token

    shape = {**MODELS["llama"], "vocab_size": 300}
    tied = LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=True))
    untied = LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=False))
    layers = sum(p.numel() for p in tied.model.layers.parameters()) + 32  # + final norm
    expected = 6 * (layers + 300 * 32) + 12 * 2 * 32 * 128
    assert model_flops_per_token(tied, 128) == expected
    assert model_flops_per_token(untied, 128) == expected


def test_an_unknown_model_key_or_a_block_longer_than_the_model_is_refused(corpus, tmp_path):
    from transformers import AutoTokenizer

    from llm_pipeline.training.pretrain import build_model

    tokenizer = AutoTokenizer.from_pretrained(corpus / "tokenizer")
    job = make_job(corpus, tmp_path, "gpt2")
    with pytest.raises(ValueError, match="hidden_size"):
        build_model(job.model_copy(update={"model": {"hidden_size": 32}}), tokenizer)
    with pytest.raises(ValueError, match="block_size 128"):
        build_model(job.model_copy(update={"block_size": 128}), tokenizer)
