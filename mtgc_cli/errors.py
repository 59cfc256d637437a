"""The project's error classes.

Library code raises these; the CLI edge turns each into one line on stderr and an exit code,
with a traceback only under ``--debug``.
"""

from __future__ import annotations


class MtgcError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code: int = 1


class UsageError(MtgcError):
    """Bad input: a malformed preset, an unknown key or id, a bad CLI value (exit code 2)."""

    exit_code = 2


class RunFailed(MtgcError):
    """A failure while a run was going (exit code 1)."""

    exit_code = 1


def excerpt(value: object, limit: int = 60) -> str:
    """``value`` as ``repr`` shows it, cut to about ``limit`` characters: what an error line quotes.

    Every value quoted in a one-line error goes through here, so a huge value (a 2 GB string from
    a YAML alias bomb, a long list) never becomes a huge line.
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
