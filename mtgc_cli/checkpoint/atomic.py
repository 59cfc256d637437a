"""Files that readers see whole or not at all: written under a hidden name, fsynced, renamed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's data to disk (a folder: its entries, i.e. renames into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _partial_name(path: Path) -> Path:
    # The real suffix is kept: SB3 adds ".zip" to a model path that lacks it.
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def write_file(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` and flush it to disk."""
    with path.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the new one."""
    tmp = _partial_name(path)
    try:
        write_file(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_atomic(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link; a copy where links fail), atomically.

    Files that mtgc writes are always replaced by a rename, never rewritten in place, so two
    names of one file never see each other change.
    """
    tmp = _partial_name(target)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
