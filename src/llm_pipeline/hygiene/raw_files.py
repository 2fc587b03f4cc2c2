"""Which raw files may be read: only regular files whose real path lies inside the data folder.

A symbolic link (to a file or to a folder, at any depth) that leads out of the folder would pull
a file such as /etc/passwd into the training data; a hard link's other names may be anywhere on
the file system; opening a FIFO blocks, and a device or a socket is not data. Such files are
listed but never opened: calling their loader raises ``RawFileRefused`` with the rule, which
ingest quarantines. Links into the project's DVC cache are DVC's own (``cache.type: symlink``
or ``hardlink``) and are read.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

logger = logging.getLogger(__name__)

REFUSAL_RULES = (
    "outside_data_folder",
    "broken_link",
    "link_loop",
    "special_file",
    "hard_link",
    "changed_after_listing",
)
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RawFileRefused(Exception):
    """A raw file that was not opened: ``rule`` is one of ``REFUSAL_RULES``."""

    def __init__(self, source: str, rule: str, detail: str):
        super().__init__(source, rule, detail)
        self.source, self.rule, self.detail = source, rule, detail

    def __str__(self) -> str:
        return f"{self.source}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class RefusedFile:
    """The loader of a file that must not be opened: calling it raises ``RawFileRefused``."""

    source: str
    rule: str
    detail: str

    def __call__(self) -> bytes:
        raise RawFileRefused(self.source, self.rule, self.detail)


@dataclass(frozen=True)
class VettedFile:
    """The loader of a regular file vetted when its folder was listed: it reads ``real`` only
    if that is still the same file (device and inode), so a swap after listing (a link, a FIFO)
    is refused instead of read, and cannot block (``O_NONBLOCK``)."""

    source: str
    real: str
    device: int
    inode: int
    size: int = 0  # bytes when listed: only to share out the work of reading

    def __call__(self) -> bytes:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            descriptor = os.open(self.real, flags)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise self._changed("it became a symbolic link") from error
        with os.fdopen(descriptor, "rb") as stream:
            found = os.fstat(descriptor)
            if not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != (
                self.device,
                self.inode,
            ):
                raise self._changed("it is no longer the file that was listed")
            return stream.read()

    def _changed(self, why: str) -> RawFileRefused:
        return RawFileRefused(self.source, "changed_after_listing", f"{self.real}: {why}")


def list_raw_files(
    folder: Path, suffixes: tuple[str, ...] | None
) -> dict[str, Callable[[], bytes]]:
    """``{path as the user sees it: loader}`` of the visible files below ``folder``, in path
    order.

    Folders reached through symbolic links inside ``folder`` are walked like any other; a link
    out of it, or to a folder that contains the link, is one refused entry. ``suffixes`` filter
    files (not refused folders) by the name they are listed under.
    """
    walk = _Walk(Path(folder), suffixes)
    walk.folder(str(folder), Path(folder).as_posix(), (walk.root,))
    return {
        source: found if isinstance(found, RefusedFile) else walk.vet(source, *found)
        for source, found in walk.found.items()
    }


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Walk:
    """One listing of a raw folder: what was found, in path order (a file as its path on disk,
    real path and ``lstat``, an entry refused while walking as its loader), and the names
    (real paths) each hard-linked file has inside the folder."""

    def __init__(self, folder: Path, suffixes: tuple[str, ...] | None):
        self.start = folder
        self.root = os.path.realpath(folder)
        self.suffixes = suffixes
        self.found: dict[str, RefusedFile | tuple[str, str, os.stat_result]] = {}
        self.names: dict[tuple[int, int], set[str]] = defaultdict(set)

    def folder(self, on_disk: str, shown: str, ancestors: tuple[str, ...]) -> None:
        """List ``on_disk`` (shown to the user as ``shown``); ``ancestors`` are the real paths
        of the folders walked to get here, this one last."""
        with os.scandir(on_disk) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
        for entry in listed:
            if entry.name.startswith("."):
                continue
            source = f"{shown}/{entry.name}"
            real = os.path.join(ancestors[-1], entry.name)  # for any entry but a link
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(status.st_mode):
                self.folder(entry.path, source, (*ancestors, real))
            elif stat.S_ISLNK(status.st_mode) and os.path.isdir(entry.path):
                self._linked_folder(entry.path, source, ancestors)
            elif self.suffixes is None or os.path.splitext(entry.name)[1].lower() in self.suffixes:
                self.found[source] = (entry.path, real, status)
            if stat.S_ISREG(status.st_mode) and status.st_nlink > 1:
                self.names[(status.st_dev, status.st_ino)].add(real)

    def _linked_folder(self, path: str, source: str, ancestors: tuple[str, ...]) -> None:
        real = os.path.realpath(path)
        if not _inside(real, self.root):
            detail = f"{_link_text(path, real)}, a folder outside {self.start}; not listed"
            self.found[source] = RefusedFile(source, "outside_data_folder", detail)
        elif real in ancestors:
            detail = f"{_link_text(path, real)}, a folder that contains the link itself"
            self.found[source] = RefusedFile(source, "link_loop", detail)
        else:
            self.folder(path, source, (*ancestors, real))

    def vet(self, source: str, path: str, real: str, status: os.stat_result) -> Callable[[], bytes]:
        """The loader of a file found by the walk (``real`` and ``status`` as the walk saw the
        name): ``VettedFile`` if it may be read, else ``RefusedFile``."""
        if stat.S_ISLNK(status.st_mode):
            real = os.path.realpath(path)
            if not _inside(real, self.root) and not self._in_cache(real):
                where = f"outside {self.start}"
                if self.dvc_cache:
                    where += f" and outside DVC's cache {self.dvc_cache}"
                detail = f"{_link_text(path, real)}, {where}; not opened"
                return RefusedFile(source, "outside_data_folder", detail)
            try:
                status = os.stat(real, follow_symlinks=False)
            except OSError as error:
                detail = f"{_link_text(path, real)}, which cannot be found ({error.strerror})"
                return RefusedFile(source, "broken_link", detail)
            if stat.S_ISLNK(status.st_mode):
                detail = f"{_link_text(path, real)}: symbolic links that loop; not opened"
                return RefusedFile(source, "broken_link", detail)
        for is_kind, kind in _SPECIAL_KINDS:
            if is_kind(status.st_mode):
                return RefusedFile(source, "special_file", f"{kind}, not a file; not opened")
        if not stat.S_ISREG(status.st_mode):
            return RefusedFile(source, "special_file", "not a regular file; not opened")
        inode = (status.st_dev, status.st_ino)
        names = len(self.names.get(inode, ()))
        if (
            status.st_nlink > max(1, names)
            and not self._in_cache(real)
            and inode not in self.cache_inodes
        ):
            detail = (
                f"a hard link: {status.st_nlink} names for one file, {names} of them in "
                f"{self.start}; another may be anywhere on this file system, so it was not "
                "opened (copy the file instead)"
            )
            return RefusedFile(source, "hard_link", detail)
        return VettedFile(source, real, status.st_dev, status.st_ino, status.st_size)

    def _in_cache(self, real: str) -> bool:
        return self.dvc_cache is not None and _inside(real, self.dvc_cache)

    @cached_property
    def dvc_cache(self) -> str | None:
        """The real path of the DVC cache of the project the folder is in, if it is in one
        (found only when a file leads out of the folder)."""
        return dvc_cache_folder(self.start)

    @cached_property
    def cache_inodes(self) -> set[tuple[int, int]]:
        """(device, inode) of the hard-linked files the DVC cache holds: with ``cache.type:
        hardlink``, the other name of each data file."""
        if self.dvc_cache is None:
            return set()
        wanted = set(self.names)
        found: set[tuple[int, int]] = set()
        for folder, _, names in os.walk(self.dvc_cache):
            for name in names:
                status = os.stat(os.path.join(folder, name), follow_symlinks=False)
                if status.st_nlink > 1 and (status.st_dev, status.st_ino) in wanted:
                    found.add((status.st_dev, status.st_ino))
        return found


def _link_text(path: str, real: str) -> str:
    """How a listed name leads to ``real``: the link's own target, and where it resolves."""
    if not os.path.islink(path):
        return f"the file {real}"
    target = os.readlink(path)
    return f"a symbolic link to {target}" + ("" if target == real else f" ({real})")


def dvc_cache_folder(start: Path) -> str | None:
    """The real path of the local cache of the DVC project ``start`` is in (``.dvc/cache``
    unless DVC's configuration says otherwise), or ``None`` outside a DVC project."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        project = Repo.find_root(str(start))
    except NotDvcRepoError:
        return None
    try:
        with Repo(project) as repo:
            return os.path.realpath(repo.cache.local_cache_dir)
    except DvcException as error:  # a broken DVC setup: links into its cache are then refused
        logger.warning("DVC project %s: its cache cannot be found (%s)", project, error)
        return None
