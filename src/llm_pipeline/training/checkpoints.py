"""Checkpoints that count only once complete, resuming from the last one, and ranks that agree.

The Trainer writes ``checkpoint-<step>`` file by file, so a process killed mid-save leaves a
folder that looks like a checkpoint and is not. After each save, ``CompleteCheckpoints`` records
every file's size and digest (``training/manifests.py``: sampled for large files, every byte
with ``launch.digest: full``, then hashed by all ranks in parallel, a share each) in a marker
written last and atomically; on start, ``resumable_checkpoint`` takes the newest folder whose
files match its marker and reports (then removes) every newer one that does not. Nothing here
imports Kedro.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from llm_pipeline.training.manifests import (
    digest_mode,
    folder_files,
    folder_manifest,
    manifest_problem,
    write_manifest,
)

logger = logging.getLogger(__name__)

MARKER_FILE = "checkpoint_complete.json"
CHECKPOINT_PREFIX = "checkpoint-"
_PR_SET_PDEATHSIG = 1


def write_marker(folder: Path, step: int, files: dict[str, dict[str, Any]] | None = None) -> None:
    """Declare ``folder`` complete: its files are flushed to disk, then the marker renamed in."""
    write_manifest(folder, folder / MARKER_FILE, leave_out=MARKER_FILE, files=files, step=step)


def shared_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``folder``'s manifest; with full digests under torchrun, every rank hashes a share of the
    files (the largest first, dealt round the ranks) and all get the whole manifest."""
    if digest_mode() != "full" or not _distributed():
        return folder_manifest(folder, MARKER_FILE)
    import torch.distributed as dist

    names = sorted(
        folder_files(folder, MARKER_FILE), key=lambda name: -(folder / name).stat().st_size
    )
    share = names[dist.get_rank() :: dist.get_world_size()]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, folder_manifest(folder, mode="full", names=share))
    return {name: facts for part in parts for name, facts in sorted(part.items())}


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when its files match its marker."""
    marker = folder / MARKER_FILE
    if not marker.exists():
        return "no completion marker (the save was interrupted)"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"unreadable completion marker ({error})"
    if recorded.get("step") != checkpoint_step(folder):
        return f"its marker is for step {recorded.get('step')}"
    return manifest_problem(folder, recorded.get("files") or {}, MARKER_FILE)


def checkpoint_step(folder: Path) -> int | None:
    suffix = folder.name.removeprefix(CHECKPOINT_PREFIX)
    return int(suffix) if folder.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``checkpoint_dir``; newer broken ones are logged and
    removed, since the run that resumes would write its own checkpoints over them."""
    folders = [path for path in checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*") if path.is_dir()]
    numbered = [path for path in folders if checkpoint_step(path) is not None]
    for folder in sorted(numbered, key=checkpoint_step, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("Skipping checkpoint %s: %s. Removing it.", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
    return None


def resumable_checkpoint(checkpoint_dir: Path) -> str | None:
    """What to pass as ``trainer.train(resume_from_checkpoint=...)``: rank 0 decides, all follow.

    Call it after the TrainingArguments exist (they start the process group under torchrun).
    """
    choice: list[str | None] = [None]
    if _rank() == 0:
        found = last_complete_checkpoint(Path(checkpoint_dir)) if checkpoint_dir else None
        if found is not None:
            logger.info("Resuming from %s (step %d)", found, checkpoint_step(found))
            choice = [str(found)]
        else:
            logger.info("No complete checkpoint in %s: training from the start", checkpoint_dir)
    if _distributed():
        import torch.distributed as dist

        dist.broadcast_object_list(choice, src=0)
    return choice[0]


class CompleteCheckpoints(TrainerCallback):
    """Mark each checkpoint complete once every rank has written its part, then keep the last
    ``save_total_limit`` complete ones; under torchrun, also die with the launcher."""

    def __init__(self) -> None:
        self._keep: int | None = None

    def on_init_end(self, args, state, control, **kwargs):
        # The Trainer rotates before this callback can mark the new checkpoint, which with a
        # limit of 1 would leave no complete checkpoint for a moment: rotation moves here.
        self._keep, args.save_total_limit = args.save_total_limit, None
        die_with_launcher()

    def on_save(self, args, state, control, **kwargs):
        from transformers.trainer_utils import rotate_checkpoints

        _barrier()  # every rank has written its RNG state into the folder
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        files = shared_manifest(folder) if digest_mode() == "full" else None
        if args.should_save:
            write_marker(folder, state.global_step, files)
            rotate_checkpoints(args.output_dir, self._keep, state.best_model_checkpoint)
        _barrier()


class SameWeightsOnEveryRank(TrainerCallback):
    """At the end, every rank hashes its parameters; rank 0 records the hashes in the training
    log, and any difference between ranks fails the run (data-parallel replicas must agree).
    Under FSDP, where each rank holds its shard instead, rank 0 logs how many parameter tensors
    are sharded when training starts."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None or not args.fsdp or not state.is_world_process_zero:
            return
        from torch.distributed.tensor import DTensor

        parameters = list(model.parameters())
        sharded = sum(isinstance(parameter, DTensor) for parameter in parameters)
        if sharded:
            logger.info(
                "FSDP: %d of %d parameter tensors sharded across %d ranks",
                sharded,
                len(parameters),
                args.world_size,
            )
        else:
            # accelerate turns FSDP on for GPUs (and other accelerators) only: on CPUs the
            # Trainer quietly trains data-parallel, every rank holding the whole model.
            logger.warning(
                "FSDP was asked for (fsdp: %s) but no parameter is sharded: accelerate shards "
                "on GPUs only, so the %d ranks train data-parallel, each holding the whole model",
                args.fsdp,
                args.world_size,
            )

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is None or args.fsdp or args.deepspeed:
            return  # sharded parameters differ between ranks by design
        digests = [parameter_sha256(model)]
        if _distributed():
            import torch.distributed as dist

            digests = [None] * dist.get_world_size()
            dist.all_gather_object(digests, parameter_sha256(model))
        if state.is_world_process_zero:
            state.log_history.append({"step": state.global_step, "parameter_sha256": digests})
        if len(set(digests)) > 1:
            differing = [rank for rank, digest in enumerate(digests) if digest != digests[0]]
            raise RuntimeError(f"Ranks {differing} ended with weights different from rank 0's.")


def parameter_sha256(model: Any) -> str:
    """One SHA-256 over every parameter's name and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def die_with_launcher() -> None:
    """Under torchrun on Linux, have the kernel kill this worker when its agent dies.

    torchrun starts workers in sessions of their own, so killing the launcher's process group
    would otherwise leave them training on, racing the re-run that resumes their checkpoints.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the agent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _barrier() -> None:
    if _distributed():
        import torch.distributed as dist

        dist.barrier()
