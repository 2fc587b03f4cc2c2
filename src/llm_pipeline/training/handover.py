"""The model of a launch on several machines, handed from rank 0 to every machine.

Rank 0 saves into ``<checkpoint dir>/handover/<rendezvous id>/model`` on the shared
``checkpoint_root`` and, once its entrypoint has returned, writes ``complete.json`` (every
file's size and digest, ``training/manifests.py``; ``jobs.declare_complete``). After the launch
every machine waits for that marker, copies the folder into its own output folder, checks the
copy against the marker,
and leaves ``taken-<node_rank>``; the machine that sees every node's marker may remove the
shared copy. So every machine goes on to the next node of its stage with the same model.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from llm_pipeline.training.jobs import HANDOVER_COMPLETE, HANDOVER_MODEL
from llm_pipeline.training.manifests import manifest_problem

_TAKEN_PREFIX = "taken-"
_POLL_SECONDS = 0.5


class HandoverError(RuntimeError):
    """The model rank 0 saved did not reach this machine complete in time."""


def handover_dir(checkpoint_dir: Path, rdzv_id: str) -> Path:
    """Where the launch with rendezvous ``rdzv_id`` hands its model over."""
    return checkpoint_dir / "handover" / rdzv_id


def clear_handover(handover: Path) -> None:
    """Remove what an earlier, interrupted run with the same rendezvous id left.

    Safe on every machine: rank 0 saves only after every machine has joined the rendezvous,
    that is after every machine has cleared.
    """
    shutil.rmtree(handover, ignore_errors=True)
    handover.mkdir(parents=True, exist_ok=True)


def take_model(handover: Path, destination: Path, timeout: float) -> None:
    """Copy ``handover``'s model into ``destination`` once rank 0 declared it complete and the
    copy matches the declaration; wait up to ``timeout`` seconds for a lagging file system."""
    deadline = time.monotonic() + timeout
    while True:
        problem = _copy_if_complete(handover, destination)
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise HandoverError(
                f"The model that rank 0 saved is not complete in {handover / HANDOVER_MODEL} "
                f"after {timeout:g} s: {problem}. launch.checkpoint_root must be storage that "
                "every machine sees at the same path; launch.handover_timeout gives a slow "
                "shared file system more time."
            )
        time.sleep(_POLL_SECONDS)


def _copy_if_complete(handover: Path, destination: Path) -> str | None:
    """Copy the model into ``destination``; None when the copy matches rank 0's declaration,
    else what is wrong."""
    marker = handover / HANDOVER_COMPLETE
    try:
        expected = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"rank 0 has not declared it complete ({marker} does not exist)"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{marker} cannot be read ({error})"
    for child in destination.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    try:
        shutil.copytree(handover / HANDOVER_MODEL, destination, dirs_exist_ok=True)
    except (OSError, shutil.Error) as error:
        return f"copying it failed ({error})"
    return manifest_problem(destination, expected, leave_out=HANDOVER_COMPLETE)


def mark_taken(handover: Path, node_rank: int) -> None:
    """Say that machine ``node_rank`` has its copy."""
    (handover / f"{_TAKEN_PREFIX}{node_rank}").touch()


def everyone_took(handover: Path, nnodes: int) -> bool:
    """Whether all ``nnodes`` machines have their copy (then the shared one may go)."""
    return all((handover / f"{_TAKEN_PREFIX}{rank}").exists() for rank in range(nnodes))
