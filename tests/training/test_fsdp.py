"""FSDP2 on CPUs. The Trainer shards only on GPUs (accelerate turns FSDP on for accelerators
alone): asked for FSDP on a CPU it trains data-parallel and the run says so. What FSDP2 itself
does to this project's models is tested on a CPU mesh with gloo, as accelerate drives it on
GPUs: two processes shard a LoRA model with ``fully_shard``, train a step, gather the full
state dict, save the adapter and fold it into the starting model, and end with the weights of
one process that trained on the whole batch; and RLHF's reward model, read by rank 0 alone and
placed by the FSDP plugin, is sharded and scores as the whole model does; and the final save of
a model sharded by FSDP2 writes the whole model (transformers' own save writes none)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support import build_tiny_model, job_module, launch_config, saved_weights

from llm_pipeline.training.launch import launch
from llm_pipeline.training.models import merge_adapter_folder

pytestmark = pytest.mark.slow

LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def conversations(path: Path) -> Path:
    rows = [
        [
            {"role": "user", "content": f"Where is my order {number}?"},
            {"role": "assistant", "content": f"Order {number} ships on day {number % 5 + 1}."},
        ]
        for number in range(24)
    ]
    path.write_text("".join(json.dumps({"messages": row}) + "\n" for row in rows))
    return path


def test_fsdp_asked_for_on_cpus_trains_data_parallel_and_says_so(tmp_path, caplog):
    base = build_tiny_model(tmp_path / "base")
    job = {
        "train_file": conversations(tmp_path / "conversations.jsonl"),
        "model_dir": base,
        "output_dir": tmp_path / "out",
        "checkpoint_dir": tmp_path / "checkpoints",
        "method": "lora",
        "lora": LORA,
        "sft": {
            "max_steps": 2,
            "per_device_train_batch_size": 4,
            "max_length": 96,
            "logging_steps": 1,
            "save_strategy": "no",
            "seed": 3,
            "packing": False,
            "fsdp": "full_shard",
            "fsdp_config": {"version": 2},
        },
    }
    with caplog.at_level(logging.INFO, logger="llm_pipeline.training.launch"):
        launch("llm_pipeline.training.sft", job, launch_config(nproc_per_node=2), tmp_path / "j")
    assert "accelerate shards on GPUs only, so the 2 ranks train data-parallel" in caplog.text
    assert (tmp_path / "out" / "model.safetensors").is_file()


# What both workers start with: the job's config read, the gloo process group joined.
GLOO_JOB = """
import argparse
from pathlib import Path

import torch


def gloo_job():
    import torch.distributed as dist
    import yaml

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    job = yaml.safe_load(parser.parse_args().config.read_text())
    dist.init_process_group("gloo")
    return job, dist.get_rank()
"""
# ... and end with: every rank done, the group left.
GLOO_END = """

if __name__ == "__main__":
    import torch.distributed as dist

    main()
    dist.barrier()
    dist.destroy_process_group()
"""

# The worker, and the helpers the test's one-process run shares with it.
FSDP2_LORA = (
    GLOO_JOB
    + """

LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def lora_model(base):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # the same adapters on every process
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))


def global_batch():
    return torch.randint(0, 200, (4, 16), generator=torch.Generator().manual_seed(1))


def train_one_step(model, batch):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()


def main():
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    job, rank = gloo_job()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    model = lora_model(job["base"])
    for layer in model.base_model.model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shards = [p for p in model.parameters() if isinstance(p, DTensor)]
    assert len(shards) == len(list(model.parameters()))
    assert sum(p.to_local().numel() for p in shards) < sum(p.numel() for p in shards)
    train_one_step(model, global_batch()[rank::2])  # half the batch each
    state = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if rank == 0:
        model.save_pretrained(job["output"], state_dict=state)
"""
    + GLOO_END
)


def test_fsdp2_shards_trains_gathers_and_merges_like_one_process(tmp_path, monkeypatch):
    import importlib

    base = build_tiny_model(tmp_path / "base")
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    module = job_module(tmp_path, monkeypatch, "fsdp2_lora", FSDP2_LORA)
    job = {"base": str(base), "output": str(sharded)}
    launch(module, job, launch_config(nproc_per_node=2), tmp_path / "job")
    monkeypatch.syspath_prepend(str(tmp_path))
    worker = importlib.import_module(module)
    model = worker.lora_model(base)
    worker.train_one_step(model, worker.global_batch())
    model.save_pretrained(whole)

    for folder in (sharded, whole):
        merge_adapter_folder(folder, base)
    merged, expected, start = (saved_weights(path) for path in (sharded, whole, base))
    assert merged.keys() == expected.keys()
    assert max((merged[name] - expected[name]).abs().max().item() for name in merged) < 1e-5
    changed = [name for name in merged if not merged[name].equal(start[name])]
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)


# The final save of a model trained under FSDP2, through transformers' own Trainer.save_model:
# accelerate's default state dict type for FSDP2 is sharded, and save_model then writes no
# weights; under ``full_state_dict`` it gathers the whole model and rank 0 writes it. (The
# Trainer does not shard on CPUs, so the model is sharded here and the accelerator told so.)
FINAL_SAVE_FSDP2 = (
    GLOO_JOB
    + """
import json


def main():
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from llm_pipeline.training.jobs import full_state_dict

    job, rank = gloo_job()
    model = AutoModelForCausalLM.from_pretrained(job["base"], dtype=torch.float32)
    arguments = TrainingArguments(output_dir=job["scratch"], report_to="none", use_cpu=True)
    trainer = Trainer(model=model, args=arguments)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    state = trainer.accelerator.state
    state.fsdp_plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
    state.distributed_type = DistributedType.FSDP
    trainer.is_fsdp_enabled = True
    before = str(state.fsdp_plugin.state_dict_type)
    trainer.save_model(job["as_configured"])
    with full_state_dict(trainer):
        trainer.save_model(job["full"])
    found = {"before": before, "after": str(state.fsdp_plugin.state_dict_type)}
    Path(job["output"], f"rank{rank}.json").write_text(json.dumps(found))
"""
    + GLOO_END
)


def test_the_final_save_of_an_fsdp2_model_writes_the_whole_model(tmp_path, monkeypatch):
    base = build_tiny_model(tmp_path / "base")
    output = tmp_path / "found"
    output.mkdir()
    folders = {name: tmp_path / name for name in ("as_configured", "full", "scratch")}
    module = job_module(tmp_path, monkeypatch, "fsdp2_final_save", FINAL_SAVE_FSDP2)
    job = {"base": str(base), "output": str(output), **{k: str(v) for k, v in folders.items()}}
    launch(module, job, launch_config(nproc_per_node=2), tmp_path / "job")
    for rank in (0, 1):
        found = json.loads((output / f"rank{rank}.json").read_text())
        # Sharded is accelerate's FSDP2 default, and it is what training's checkpoints keep.
        assert found["before"] == found["after"] == "StateDictType.SHARDED_STATE_DICT"
    # As transformers saves by default: no weights at all.
    assert not list(folders["as_configured"].glob("*.safetensors"))
    saved, start = saved_weights(folders["full"]), saved_weights(base)
    assert saved.keys() == start.keys()
    assert all(saved[name].equal(start[name]) for name in saved)


# An RL run's reward model under FSDP: read by rank 0 alone, placed by the trainer's FSDP plugin
# as TRL places a reward model of its own, each rank holding a share and scoring its own
# completions.
REWARD_FSDP2 = (
    GLOO_JOB
    + """
import json
from types import SimpleNamespace


def main():
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.tensor import DTensor
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm_pipeline.training.reward import score_conversations
    from llm_pipeline.training.rl import load_reward_model

    job, rank = gloo_job()
    folder = Path(job["reward_model"])
    whole = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    conversations = [
        [
            {"role": "user", "content": f"Where is order {rank}{n}?" + " Please." * n},
            {"role": "assistant", "content": f"It ships on day {n}."},
        ]
        for n in range(5)
    ]
    expected = score_conversations(whole, tokenizer, conversations, batch_size=2)
    trainer = SimpleNamespace(
        is_deepspeed_enabled=False,
        is_fsdp_enabled=True,
        accelerator=SimpleNamespace(
            state=SimpleNamespace(fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2)),
            device=torch.device("cpu"),
        ),
    )
    # Which ranks read the weights from the folder while the reward model is loaded.
    reads = []
    read = AutoModelForSequenceClassification.from_pretrained.__func__

    def counted(cls, *args, **kwargs):
        reads.append(rank)
        return read(cls, *args, **kwargs)

    AutoModelForSequenceClassification.from_pretrained = classmethod(counted)
    sharded = load_reward_model(folder, trainer)
    parameters = list(sharded.parameters())
    found = {
        "reads": len(reads),
        "sharded": all(isinstance(p, DTensor) for p in parameters),
        "on_meta": any(p.to_local().is_meta for p in parameters),
        "held": sum(p.to_local().numel() for p in parameters),
        "total": sum(p.numel() for p in parameters),
        "training": sharded.training,
        "expected": expected,
        "scores": score_conversations(sharded, tokenizer, conversations, batch_size=2),
    }
    Path(job["output"], f"rank{rank}.json").write_text(json.dumps(found))
"""
    + GLOO_END
)


def test_the_rl_reward_model_is_read_by_rank_0_sharded_and_scores_as_whole(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = build_tiny_model(tmp_path / "base")
    torch.manual_seed(0)
    reward_model = tmp_path / "reward_model"  # a scoring head of its own, saved
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(
        reward_model
    )
    AutoTokenizer.from_pretrained(base).save_pretrained(reward_model)
    output = tmp_path / "scores"
    output.mkdir()
    module = job_module(tmp_path, monkeypatch, "fsdp2_reward", REWARD_FSDP2)
    job = {"reward_model": str(reward_model), "output": str(output)}
    launch(module, job, launch_config(nproc_per_node=2), tmp_path / "job")
    ranks = [json.loads((output / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [found["reads"] for found in ranks] == [1, 0]  # rank 1 never read the weights
    for found in ranks:
        assert found["sharded"] and not found["on_meta"] and not found["training"]
        assert found["held"] < 0.6 * found["total"]  # about half each, not the whole model
        assert found["scores"] == pytest.approx(found["expected"], abs=1e-5)
    assert ranks[0]["held"] + ranks[1]["held"] >= ranks[0]["total"]
    assert ranks[0]["scores"] != ranks[1]["scores"]  # each rank scored its own completions
