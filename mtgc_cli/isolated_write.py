"""A write that cannot take the process down with it: run in a forked child, judged by the parent.

HDF5 (under h5py, under Minari) buffers metadata and writes it when a file closes. On a full disk
those writes fail inside h5py's object destructors, where the error is printed ("Exception
ignored in ... errno = 28") rather than raised, and the process later segfaults: ``mtgc collect``
printed pages of h5py tracebacks, died with SIGSEGV and left a half-written dataset behind. In a
child the crash, the C library's error text and any exception stay there; the parent turns them
into one reason and the caller removes what the child left.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import traceback
from collections.abc import Callable

# HDF5's report of a failed write(2): "... errno = 28, error message = 'No space left on device'".
_HDF5_ERRNO = re.compile(r"errno = (\d+), error message = '([^']*)'")


def run_in_child(write: Callable[[], None]) -> str | None:
    """Run ``write()`` in a forked child; None if it returned and wrote without a failed write.

    Otherwise the reason, in a few words: the OS error of the first failed write (``No space left
    on device (errno 28)``), the exception's last line, or the signal that killed the child.
    """
    with tempfile.TemporaryFile() as captured:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                os.dup2(captured.fileno(), 2)  # the C library's error text, too
                write()
            except BaseException as exc:
                code = 1
                detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
                os.write(2, f"\nMTGC-FAILED: {detail}\n{traceback.format_exc()}".encode())
            finally:
                # No interpreter shutdown: destructors of half-closed HDF5 objects are what crash.
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    failed_write = _HDF5_ERRNO.search(text)
    if failed_write is not None:
        return f"{failed_write.group(2)} (errno {failed_write.group(1)})"
    for line in text.splitlines():
        if line.startswith("MTGC-FAILED: "):
            return line.removeprefix("MTGC-FAILED: ")
    if os.WIFSIGNALED(status):
        return f"the writer was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if os.WEXITSTATUS(status) != 0:
        return f"the writer exited with status {os.WEXITSTATUS(status)}"
    return None
