"""SIGINT and SIGTERM while training: recorded, and acted on where the run can stop whole."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class StopRequest:
    """SIGINT and SIGTERM while training: stop at the next env step with a whole checkpoint.

    The handler only records the signal; the training loop checks it after each env step, where
    model, buffer and counters agree, and saves there. A second signal while it saves changes
    nothing, so a second Ctrl-C cannot leave a half-written checkpoint. Handlers are installed
    explicitly for both signals: a job started with ``&`` from a script inherits SIGINT ignored.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or 0)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:  # Ctrl-C again (a repeated SIGTERM is a parent passing it on)
            # os.write, not print: a handler can run in the middle of another write to stderr.
            os.write(2, b"mtgc: stopping at the next env step with a whole checkpoint; please wait\n")

    def install(self) -> dict[int, Any]:
        """Install for SIGINT and SIGTERM (main thread only); returns the handlers it replaced."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self) for signum in (signal.SIGINT, signal.SIGTERM)}

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = self.install()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
