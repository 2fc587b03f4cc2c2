"""Atomic writes: a crash never leaves a half-written file or folder where a reader would look."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary sibling of ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_directory_atomically(source: Path, target: Path) -> None:
    """Move (or copy, across file systems) ``source`` to ``target``, replacing it in one rename.

    The new tree is staged as a hidden sibling of ``target`` so the final step is a rename on
    one file system; an existing ``target`` is renamed aside first and removed afterwards.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = staging / target.name
    try:
        shutil.move(str(source), str(staged))
        if target.exists():
            os.replace(target, staging / f"{target.name}.previous")
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
