"""SIGINT and SIGTERM: while a run trains, recorded and acted on where it can stop whole
(:class:`StopRequest`); outside training, raised as an interrupt (:func:`interrupts`)."""

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


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training (which saves a checkpoint instead): ends the command like Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def interrupts() -> Iterator[None]:
    """Outside training, SIGINT and SIGTERM end a command as KeyboardInterrupt (SIGTERM as
    :class:`Terminated`; the CLI exits 130 and 143). Set explicitly: a command started with ``&``
    from a script inherits SIGINT ignored. A :class:`StopRequest` replaces both while a run
    trains, to stop with a whole checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
