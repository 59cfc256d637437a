"""One writer per folder: an exclusive lock that a run (or a compare) holds while it writes.

The lock is ``fcntl.flock`` on ``<folder>/.mtgc.lock``: the kernel releases it when the holder's
process ends in any way (exit, exception, SIGKILL, a crash), so a lock is never stale, and no
timeout or clean-up is needed. The file holds the holder's PID and command line, read by a second
writer to say who holds it. The file itself stays behind (it is empty of meaning once unlocked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from mtgc_cli.errors import UsageError

LOCK_FILE = ".mtgc.lock"


class FolderBusy(UsageError):
    """Another process holds the folder's lock (exit 2: nothing was written)."""


def holder(folder: Path) -> str:
    """What the lock file says about its holder: ``process 123 (mtgc train ...)``, or ``another process``."""
    try:
        text = (folder / LOCK_FILE).read_text().strip()
    except OSError:
        return "another process"
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"process {pid}" + (f" ({command[:120]})" if command else "")


def _busy(folder: Path, what: str) -> str:
    return (
        f"{what} {folder} is being written by {holder(folder)}; valid: wait for it to end or stop it "
        "(Ctrl-C or kill -INT saves a whole checkpoint), then run this again"
    )


@contextlib.contextmanager
def hold(folder: Path, what: str = "run folder") -> Iterator[None]:
    """Hold ``folder``'s lock for the block; :class:`FolderBusy` at once if another process has it."""
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(_busy(folder, what)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {' '.join(['mtgc', *sys.argv[1:]])}\n".encode())
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)


def check_free(folder: Path, what: str = "run folder") -> None:
    """:class:`FolderBusy` now if another process holds ``folder``'s lock: an early, friendly check
    before any work, which writes nothing (the writer itself holds the lock with :func:`hold`)."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return  # never locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FolderBusy(_busy(folder, what)) from None
    finally:
        os.close(fd)
