"""The project's error classes.

Library code raises these; the CLI edge turns each into one line on stderr and an exit code,
with a traceback only under ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MtgcError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code: int = 1


class UsageError(MtgcError):
    """Bad input: a malformed preset, an unknown key or id, a bad CLI value (exit code 2)."""

    exit_code = 2


class RunFailed(MtgcError):
    """A failure while a run was going (exit code 1)."""

    exit_code = 1


def suggest(word: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``word``; empty when none is close."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
