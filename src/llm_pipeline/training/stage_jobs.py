"""The calling side of a training job: stage its data, launch it under torchrun, hand back a folder.

What the training stages' nodes call (pretrain, finetune, align, tune). They pass tables in and get
a ``ModelFolder`` back; the catalog moves that folder into place. Like the rest of ``training/``
it imports nothing from Kedro.
Checkpoints live under ``launch.checkpoint_root`` in a folder named by the stage and by a
fingerprint of the job and its data, so re-running a killed stage resumes where it stopped and a
changed config or data set starts afresh. On several machines every machine hands back the
model (rank 0 saves it there for all of them: ``training/handover.py``), and each launch meets in
a rendezvous of its own, named alike on every machine.

The pretrain and finetune nodes are here too: their stages run them, and so do the tune stage's
trials, which train exactly as ``kedro run --pipeline <stage>`` would.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from llm_pipeline.training.folders import Folder, ModelFolder
from llm_pipeline.training.handover import (
    clear_handover,
    everyone_took,
    handover_dir,
    mark_taken,
    take_model,
)
from llm_pipeline.training.jobs import (
    HANDOVER_MODEL,
    HANDOVER_VARIABLE,
    RUN_CONFIG_FILE,
    TRAINING_LOG_FILE,
)
from llm_pipeline.training.launch import (
    LaunchConfig,
    Placement,
    TrackingRun,
    launch,
    placement,
    rendezvous_id,
)
from llm_pipeline.training.manifests import DigestMode, file_facts, file_sha256

logger = logging.getLogger(__name__)

# How a folder was made, not what it holds: a re-made but identical model still matches.
_UNFINGERPRINTED = {RUN_CONFIG_FILE, TRAINING_LOG_FILE}
# Staged model folders: this prefix, then ``<pid>@<host>-`` of the process that made them.
STAGING_PREFIX = ".training-output-"


def write_json_lines(frame: pd.DataFrame, path: Path, columns: list[str]) -> Path:
    """The ``columns`` of ``frame`` as JSON Lines, what the training entrypoints read."""
    with path.open("w", encoding="utf-8") as handle:
        for record in frame[columns].to_dict(orient="records"):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def run_training_job(
    module: str,
    job: dict[str, Any],
    tables: dict[str, tuple[pd.DataFrame, list[str]]],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """Run ``module`` under torchrun on ``tables`` and return the model folder it saved.

    ``tables`` maps a job field (``train_file``) to a table and the columns to write. The data
    live in a temporary folder; checkpoints in the job's folder under ``checkpoint_root``,
    removed after success unless ``keep_checkpoints`` (without a root, in the temporary folder).
    The model is written into a new folder under ``staging_root`` (the models folder by
    default), so that the catalog moves it into place by a rename, not by copying the weights
    from /tmp (a temporary folder when ``staging_root`` is null).

    On several machines every machine hands back the same model: rank 0 saves it on the shared
    ``checkpoint_root`` and each machine copies it (``training/handover.py``), so that every
    machine runs the stage's next launch too.
    """
    config = LaunchConfig.model_validate(launch_params)
    where = placement(config)
    if where.nnodes > 1 and config.checkpoint_root is None:
        raise ValueError(
            f"Training on {where.nnodes} machines needs launch.checkpoint_root: storage that "
            "every machine sees at the same path, where rank 0 saves the model for all of them."
        )
    output_dir = _new_output_dir(config)
    handover = None
    try:
        with tempfile.TemporaryDirectory(prefix="llm-pipeline-job-") as workdir:
            work = Path(workdir)
            files = {
                field: write_json_lines(frame, work / f"{field}.jsonl", columns)
                for field, (frame, columns) in tables.items()
            }
            checkpoint_dir, rdzv_id = _checkpoints_and_rendezvous(
                module, job, files, config, where, work
            )
            job_output, environment = output_dir, {}
            if where.nnodes > 1 and rdzv_id is not None:
                handover = handover_dir(checkpoint_dir, rdzv_id)
                clear_handover(handover)
                job_output = handover / HANDOVER_MODEL
                environment[HANDOVER_VARIABLE] = str(handover)
            full_job = {
                **job,
                **files,
                "output_dir": job_output,
                "checkpoint_dir": checkpoint_dir,
            }
            launch(
                module,
                full_job,
                config,
                work,
                log_dir=checkpoint_dir / "torchrun_logs",
                tracking=current_tracking(),
                rdzv_id=rdzv_id,
                environment=environment,
            )
            if handover is not None:
                take_model(handover, output_dir, config.handover_timeout)
                mark_taken(handover, where.node_rank)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    last = handover is None or everyone_took(handover, where.nnodes)
    if config.checkpoint_root is not None and not config.keep_checkpoints and last:
        # On several machines only the last one to take its copy removes the shared folder
        # (two may both see every marker: removing is then done twice, harmlessly).
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return ModelFolder(output_dir)


def _new_output_dir(config: LaunchConfig) -> Path:
    """A new folder for the job's model under ``staging_root``, else a temporary folder.

    Its name says which process on which machine made it (``.training-output-<pid>@<host>-``),
    so that the folders of a process killed before it could move or remove its own (a model's
    size each) are removed by the next launch on the same machine.
    """
    if config.staging_root is None:
        return Path(tempfile.mkdtemp(prefix="llm-pipeline-model-"))
    config.staging_root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_outputs(config.staging_root)
    prefix = f"{STAGING_PREFIX}{os.getpid()}@{socket.gethostname()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=config.staging_root))


def remove_abandoned_outputs(staging_root: Path) -> list[Path]:
    """Remove the staged model folders under ``staging_root`` whose process, on this machine,
    has ended; those of live processes and of other machines (a shared file system) stay."""
    host = socket.gethostname()
    removed = []
    for folder in staging_root.glob(f"{STAGING_PREFIX}*"):
        owner = folder.name[len(STAGING_PREFIX) :].rsplit("-", 1)[0]
        pid, _, made_on = owner.partition("@")
        if made_on != host or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        logger.warning("Removed %s, left by process %s, which ended before moving it", folder, pid)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _checkpoints_and_rendezvous(
    module: str,
    job: dict[str, Any],
    files: dict[str, Path],
    config: LaunchConfig,
    where: Placement,
    work: Path,
) -> tuple[Path, str | None]:
    """The job's checkpoint folder (in ``work`` without a checkpoint root) and, unless the
    launch runs standalone, its rendezvous id."""
    if config.checkpoint_root is None and where.standalone:
        return work / "checkpoints", None
    stage = module.rsplit(".", 1)[-1]
    fingerprint = job_fingerprint(module, job, files, config, where)
    folder = work / "checkpoints"
    if config.checkpoint_root is not None:
        folder = checkpoint_folder(config.checkpoint_root, stage, fingerprint)
    if where.standalone:
        return folder, None
    return folder, next_rendezvous_id(config.rdzv_id, where, stage, fingerprint)


# How many launches of each job (by fingerprint) this process made, per node rank: the n-th
# launch of a job is the n-th on every machine, which gives each launch an id of its own.
_LAUNCHES: collections.Counter[tuple[str, int]] = collections.Counter()
_LAUNCHES_LOCK = threading.Lock()


def next_rendezvous_id(prefix: str, where: Placement, stage: str, fingerprint: str) -> str:
    """The rendezvous id of this process's next launch of the job ``fingerprint``."""
    with _LAUNCHES_LOCK:
        _LAUNCHES[fingerprint, where.node_rank] += 1
        number = _LAUNCHES[fingerprint, where.node_rank]
    return rendezvous_id(prefix, where.job_id, stage, fingerprint, number)


def current_tracking() -> TrackingRun | None:
    """The run kedro-mlflow opened for this ``kedro run`` (or a caller's own), if any.

    The Kedro side decides where a job logs; the launcher only passes it on to the workers.
    """
    run = mlflow.active_run()
    if run is None:
        return None
    return TrackingRun(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)


def job_checkpoint_dir(
    module: str, job: dict[str, Any], files: dict[str, Path], config: LaunchConfig
) -> Path | None:
    """``<checkpoint_root>/<stage>/<fingerprint>``, or None without a checkpoint root."""
    if config.checkpoint_root is None:
        return None
    fingerprint = job_fingerprint(module, job, files, config, placement(config))
    return checkpoint_folder(config.checkpoint_root, module.rsplit(".", 1)[-1], fingerprint)


def checkpoint_folder(root: Path, stage: str, fingerprint: str) -> Path:
    """The checkpoint folder of the ``stage`` job ``fingerprint`` under ``root``."""
    folder = root / stage / fingerprint
    if any(folder.glob("checkpoint-*")):
        logger.info("%s has checkpoints of an interrupted run of this job", folder)
    else:
        logger.info("Checkpoints of this %s job go to %s", stage, folder)
    return folder


def job_fingerprint(
    module: str,
    job: dict[str, Any],
    files: dict[str, Path],
    config: LaunchConfig,
    where: Placement | None = None,
) -> str:
    """A digest of what decides a job's result: its settings, the contents of the folders and
    files it names, its data and its number of processes.

    A safetensors file is described by ``launch.digest``'s digest (sampled: its size, header
    and blocks of every tensor, seconds for a 70B model), every other file by its SHA-256.
    """
    where = where or placement(config)
    described = {
        "module": module,
        "job": _described(job, config.digest),
        "data": {
            field: _content_digest(path, config.digest) for field, path in sorted(files.items())
        },
        "processes": [where.nnodes, where.nproc_per_node],
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _described(value: Any, mode: DigestMode) -> Any:
    """``value`` with every existing file or folder it names replaced by a digest of its content."""
    if isinstance(value, dict):
        return {key: _described(item, mode) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_described(item, mode) for item in value]
    names_path = isinstance(value, Path) or (isinstance(value, str) and "/" in value)
    if names_path and Path(value).expanduser().exists():
        return _content_digest(Path(value).expanduser(), mode)
    return value


def _content_digest(path: Path, mode: DigestMode) -> str:
    digest = hashlib.sha256()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for file in files:
        if not file.is_file() or file.name in _UNFINGERPRINTED:
            continue
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        if file.suffix == ".safetensors":
            digest.update(json.dumps(file_facts(file, mode), sort_keys=True).encode())
        else:
            digest.update(file_sha256(file).encode())
    return digest.hexdigest()


# --- the jobs that their stages and the tune stage's trials run -----------------------------


def pretrain_base_model(
    documents_train: pd.DataFrame,
    documents_validation: pd.DataFrame,
    tokenizer: ModelFolder,
    starting_model: ModelFolder | None,
    params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The starting model trained further on packed document blocks (``params.adapt``), or a
    ``params.architecture`` model of ``params.model`` size trained from scratch on them
    (``params.training``); evaluated on the validation documents when there are any."""
    tables = {"train_file": (documents_train, ["text"])}
    if len(documents_validation):
        tables["eval_file"] = (documents_validation, ["text"])
    job = {
        "tokenizer_dir": tokenizer.path,
        "block_size": params["block_size"],
        "architecture": params["architecture"],
        "model": params["model"],
        "training": params["training"],
        "starting_model_dir": None,
        "peak_flops_per_device": params.get("peak_flops_per_device"),
    }
    if starting_model is not None:
        # Continued pretraining: the starting model's weights and its own size and tokenizer.
        job.update(
            starting_model_dir=starting_model.path,
            block_size=params["adapt"]["block_size"],
            model={},
            training=params["adapt"]["training"],
        )
    return run_training_job("llm_pipeline.training.pretrain", job, tables, launch_params)


def choose_starting_model(pretrained: ModelFolder, named: ModelFolder | None) -> ModelFolder:
    """``named`` (the catalog's ``finetune_starting_model``, resolved by its dataset) when there
    is one, else the pretrain stage's model, by absolute path: a prompt-tuned adapter records
    it as its base model."""
    if named is None:
        return ModelFolder(pretrained.path.resolve())
    logger.info("Fine-tuning %s instead of the pretrained model", named.path)
    return named


def finetune_model(
    conversations_train: pd.DataFrame,
    conversations_validation: pd.DataFrame,
    base_model: ModelFolder,
    named_model: ModelFolder | None,
    passage_index: Folder,
    params: dict[str, Any],
    retrieval_params: dict[str, Any],
    launch_params: dict[str, Any],
) -> ModelFolder:
    """The starting model (``named_model`` if any, else the pretrain stage's ``base_model``)
    fine-tuned with TRL's SFTTrainer on the training conversations, each with the passages
    retrieved for it in its system turn (``retrieval.enabled``)."""
    from llm_pipeline.retrieval.conversations import grounding

    start = choose_starting_model(base_model, named_model)
    ground = grounding(passage_index.path, retrieval_params, training=True)
    tables = {"train_file": (grounded(conversations_train, ground), ["messages"])}
    if len(conversations_validation):
        tables["eval_file"] = (grounded(conversations_validation, ground), ["messages"])
    job = {
        "model_dir": start.path,
        "method": params["method"],
        "sft": params["sft"],
        "lora": params.get("lora") or {},
        "prompt_tuning": params.get("prompt_tuning") or {},
        "model_init_kwargs": params.get("model_init_kwargs") or {},
    }
    return run_training_job("llm_pipeline.training.sft", job, tables, launch_params)


def grounded(conversations: pd.DataFrame, ground: Any) -> pd.DataFrame:
    """``conversations`` with their messages grounded by ``ground`` (a copy)."""
    frame = conversations.copy()
    frame["messages"] = ground([list(messages) for messages in frame["messages"]])
    return frame
