"""What library code tells the user, as data: a run's progress and one-line warnings.

Library code never prints. A run reports :class:`Snapshot` values to a callback it is given (the
CLI's live view, a worker's queue); a warning goes to the ``mtgc`` logger, which writes it as
``mtgc: warning: <message>`` on stderr (the same line in the CLI, in a worker process and on a
Ray node, whoever installed nothing else).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """Where one run stands; sent from the training loop (or a worker process) to the display."""

    run: str
    steps: int
    total: int
    fps: float = 0.0
    train_success: float | None = None
    eval_success: float | None = None
    status: str = "running"  # running | done | failed | skipped


Reporter = Callable[[Snapshot], None]


class _Stderr(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (a test runner swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


logger = logging.getLogger("mtgc")
if not logger.handlers:
    _handler = _Stderr()
    # One line, never wrapped: the form of mtgc's one-line errors.
    _handler.setFormatter(logging.Formatter("mtgc: warning: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def warn(message: str) -> None:
    """``mtgc: warning: <message>`` on stderr."""
    logger.warning(message)
