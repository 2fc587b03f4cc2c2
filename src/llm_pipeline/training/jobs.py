"""What the entrypoints share: reading a job file, checking config keys, saving a model folder."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import inspect
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from llm_pipeline.training.manifests import write_manifest

RUN_CONFIG_FILE = "llm_pipeline_config.yaml"
TRAINING_LOG_FILE = "training_log.json"
# The MLflow run that trained the folder (the launcher passes it), for the registry's lineage.
LINEAGE_FILE = "lineage.json"
RUN_ID_VARIABLE = "LLM_PIPELINE_MLFLOW_RUN_ID"

JobT = TypeVar("JobT", bound=BaseModel)
# Where torchrun tells a worker to write its error (and the launcher tells torchrun).
ERROR_FILE_VARIABLE = "TORCHELASTIC_ERROR_FILE"
# Set by the launcher from ``launch.ddp_timeout``: the Trainer's ddp_timeout, in seconds.
DDP_TIMEOUT_VARIABLE = "LLM_PIPELINE_DDP_TIMEOUT"
# Set by the launcher on several machines: the shared folder where rank 0 saves the model
# (``HANDOVER_MODEL``) and, once its ``main`` has returned, declares it complete.
HANDOVER_VARIABLE = "LLM_PIPELINE_HANDOVER_DIR"
HANDOVER_MODEL = "model"
HANDOVER_COMPLETE = "complete.json"


def record_errors(main: Callable[..., int]) -> Callable[..., int]:
    """``main`` under torch's ``record``: an uncaught exception goes, with its traceback and this
    worker's global rank, into the JSON error file torchrun names, where the launcher reads it.

    torch is imported on the call, not at import: the evaluate stage imports an entrypoint module
    for a constant and must stay light.
    """

    @functools.wraps(main)
    def recorded(*args: Any, **kwargs: Any) -> int:
        from torch.distributed.elastic.multiprocessing.errors import record

        with _worker_markers():
            return record(_declaring_completion(main), error_handler=_rank_error_handler())(
                *args, **kwargs
            )

    return recorded


# Beside torch's error file, in the worker's own log folder: what a worker that left no error
# file did, for the launcher. ``WORKER_STARTED`` holds its ranks and pid; ``WORKER_ENDED`` is
# written when ``main`` returns or raises; ``WORKER_SIGTERM`` receives the stacks of every
# thread when torchrun stops the worker (SIGTERM, after another worker failed). A worker with
# the first file only was killed by another signal (SIGKILL: the kernel's out-of-memory killer)
# or left through os._exit.
WORKER_STARTED = "worker_started.json"
WORKER_ENDED = "worker_ended.json"
WORKER_SIGTERM = "sigterm_stacks.txt"


@contextlib.contextmanager
def _worker_markers() -> Iterator[None]:
    error_file = os.environ.get(ERROR_FILE_VARIABLE)
    if not error_file:
        yield
        return
    folder = Path(error_file).parent
    folder.mkdir(parents=True, exist_ok=True)
    facts = {
        "rank": int(os.environ.get("RANK", "0")),
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "pid": os.getpid(),
    }
    (folder / WORKER_STARTED).write_text(json.dumps(facts), encoding="utf-8")
    # faulthandler writes from its C signal handler, at once: a worker blocked in a collective
    # (waiting for the one that died) runs no Python handler before torchrun's SIGKILL follows.
    with (folder / WORKER_SIGTERM).open("w", encoding="utf-8") as stacks:
        faulthandler.register(signal.SIGTERM, file=stacks, all_threads=True, chain=True)
        try:
            yield
        finally:
            faulthandler.unregister(signal.SIGTERM)
            (folder / WORKER_ENDED).write_text(json.dumps(facts), encoding="utf-8")


def _declaring_completion(main: Callable[..., int]) -> Callable[..., int]:
    """``main``, after which rank 0 declares the handed-over model complete (on several
    machines): only then has the entrypoint written everything (the reward model's
    ``reward_metrics.json`` comes after its save)."""

    @functools.wraps(main)
    def declaring(*args: Any, **kwargs: Any) -> int:
        result = main(*args, **kwargs)
        handover = os.environ.get(HANDOVER_VARIABLE)
        if handover and is_rank_zero() and not result:
            declare_complete(Path(handover))
        return result

    return declaring


def declare_complete(handover: Path) -> None:
    """Record the size and SHA-256 of every file of ``handover``'s model folder in
    ``complete.json``, flushed and renamed into place last: the other machines copy the
    folder once this exists and check their copy against it."""
    folder = handover / HANDOVER_MODEL
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Rank 0 finished without saving the model into {folder}, where the other "
            "machines of this launch wait for it."
        )
    write_manifest(folder, handover / HANDOVER_COMPLETE)


def _rank_error_handler() -> Any:
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    class RankErrorHandler(ErrorHandler):
        """torch's error file plus the global rank: torchrun files it under the local rank, which
        on several machines is not the rank."""

        def record_exception(self, e: BaseException) -> None:
            super().record_exception(e)
            path = Path(os.environ.get(ERROR_FILE_VARIABLE) or os.devnull)
            if path.is_file() and "RANK" in os.environ:
                error = json.loads(path.read_text(encoding="utf-8"))
                error["message"]["extraInfo"]["rank"] = int(os.environ["RANK"])
                path.write_text(json.dumps(error), encoding="utf-8")

    return RankErrorHandler()


def read_job(job_class: type[JobT], argv: list[str] | None, description: str) -> JobT:
    """Parse ``--config job.yaml`` and validate it against ``job_class``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, required=True, help="the job's YAML file")
    args = parser.parse_args(argv)
    return job_class.model_validate(yaml.safe_load(args.config.read_text(encoding="utf-8")))


def checked_fields(config_class: type, fields: dict[str, Any], section: str) -> dict[str, Any]:
    """``fields`` if every key is a parameter of ``config_class``; otherwise fail and name them.

    Hugging Face config classes accept unknown keyword arguments silently, so a typo would
    otherwise train a different model than the one asked for.
    """
    known = set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"Unknown keys under '{section}': {unknown}. They must be fields of "
            f"{config_class.__module__}.{config_class.__name__}."
        )
    return fields


def causal_lm_peft_config(
    config_class: type, fields: dict[str, Any], section: str, task_type: str = "CAUSAL_LM"
) -> Any:
    """A PEFT config (``peft.LoraConfig``, ``peft.PromptTuningConfig``) of a causal language
    model (or, with ``task_type`` ``SEQ_CLS``, of a reward model's scoring one) from the section
    ``fields``: their keys checked, ``task_type`` set here."""
    checked_fields(config_class, fields, section)
    if "task_type" in fields:
        raise ValueError(f"Remove '{section}.task_type': it is set to {task_type} for you.")
    return config_class(task_type=task_type, **fields)


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def save_model_folder(
    trainer: Any,
    tokenizer: Any,
    job: BaseModel,
    output_dir: Path,
    merge_into: Path | str | None = None,
) -> None:
    """On rank 0, write model, tokenizer, resolved config and loss history; rename into place.

    Every rank must call this (saving may gather weights); only rank 0 writes.
    """
    staging = output_dir.with_name(f".{output_dir.name}.saving")
    with full_state_dict(trainer):
        trainer.save_model(str(staging))
    # The other ranks still look into the staging folder while saving: rename only after them.
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(str(staging))
    if merge_into is not None:
        # The trainer saved a LoRA adapter (gathered from every rank under FSDP): fold it into
        # the base model, loaded anew, so that the folder is a plain model.
        from llm_pipeline.training.models import merge_adapter_folder

        merge_adapter_folder(staging, merge_into)
    # The Trainer pickles its arguments here; the YAML below says the same without a pickle.
    (staging / "training_args.bin").unlink(missing_ok=True)
    resolved = job.model_dump(mode="json")
    (staging / RUN_CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    history = json.dumps(trainer.state.log_history, indent=1)
    (staging / TRAINING_LOG_FILE).write_text(history, encoding="utf-8")
    lineage = {"mlflow_run_id": os.environ.get(RUN_ID_VARIABLE), "job": type(job).__name__}
    (staging / LINEAGE_FILE).write_text(json.dumps(lineage), encoding="utf-8")
    if output_dir.exists() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    elif output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(staging, output_dir)


@contextlib.contextmanager
def full_state_dict(trainer: Any) -> Iterator[None]:
    """Under FSDP, the final save gathers the whole model (rank 0 writes it). accelerate's
    default state dict type for FSDP2 is SHARDED_STATE_DICT, and ``Trainer.save_model`` then
    writes no weights at all: it saves only under FULL_STATE_DICT (transformers 5.x,
    ``Trainer.save_model``). The checkpoints written during training stay as configured
    (sharded: each rank writes its share, and resumes from it)."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if not trainer.is_fsdp_enabled or plugin is None:
        yield
        return
    from torch.distributed.fsdp import StateDictType

    before = plugin.state_dict_type
    plugin.state_dict_type = StateDictType.FULL_STATE_DICT
    try:
        yield
    finally:
        plugin.state_dict_type = before


# Set by the launcher from ``launch.cpu_bf16``: whether a worker on a CPU may train in bf16.
CPU_BF16_VARIABLE = "LLM_PIPELINE_CPU_BF16"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16): only there
    does bf16 autocast pay on a CPU (1.65x for SmolLM2-135M's forward and backward on this
    project's 2-core machine); elsewhere it is emulated and slower than fp32."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # the probes are private: an unknown torch is taken to lack them
        return False


def batches_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """The indices of items of these lengths in batches of ``batch_size``, shortest first, so
    that each batch holds items of similar length and little of it is padding. Callers put
    each result back at its index, so results come out in the order given."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def inference_precision() -> Any:
    """bf16 autocast for inference on a CPU with bf16 matrix units (weights stay fp32), else
    nothing (a GPU's precision is the model's own)."""
    import contextlib

    import torch

    if not torch.cuda.is_available() and cpu_has_bf16_units():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def trainer_defaults() -> dict[str, Any]:
    """What every entrypoint's Trainer config starts from, before the job's own fields (which
    win): the hardware's precision and the launch's ``ddp_timeout``."""
    timeout = os.environ.get(DDP_TIMEOUT_VARIABLE)
    return {**hardware_precision(), **({"ddp_timeout": int(timeout)} if timeout else {})}


def hardware_precision() -> dict[str, bool]:
    """bf16 where the GPU has it, else fp16 on a GPU; on a CPU bf16 autocast (fp32 master
    weights) when ``launch.cpu_bf16`` asks and it has bf16 matrix units, else fp32; explicit
    settings win.

    Without any accelerator this also says ``use_cpu``: only then do several torchrun processes
    train as one data-parallel job instead of each training alone on all the data.
    """
    import torch

    if not torch.cuda.is_available():
        cpu = not torch.backends.mps.is_available()
        asked = os.environ.get(CPU_BF16_VARIABLE) == "1"
        return {"bf16": cpu and asked and cpu_has_bf16_units(), "fp16": False, "use_cpu": cpu}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}
