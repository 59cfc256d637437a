"""The project's error classes.

Library code raises these; the CLI edge turns each into one line on stderr and an exit code,
with a traceback only under ``--debug``.
"""

from __future__ import annotations

import difflib
import reprlib
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


def excerpt(value: object, limit: int = 60) -> str:
    """``value`` as ``repr`` shows it, cut to about ``limit`` characters: what an error line quotes.

    Every value quoted in a one-line error goes through here, so a huge value (a 2 GB string from
    a YAML alias bomb, a long list) never becomes a huge line.
    """
    # reprlib stops early in long strings and deep or long containers: repr() of a value built from
    # shared aliases would first expand all of it.
    shortened = reprlib.Repr()
    shortened.maxstring = shortened.maxother = limit
    shortened.maxlist = shortened.maxtuple = shortened.maxdict = shortened.maxset = 8
    shortened.maxlevel = 3
    text = shortened.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


# The longest error line: a terminal's width or three, never a wall of text.
MAX_LINE = 290


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """``message`` on one line of at most ``limit`` characters (cut with ``...``, keeping its
    ``; valid: ...`` part)."""
    text = " ".join(message.split("\n"))
    if len(text) <= limit:
        return text
    # The "; valid: ..." part says what to do: it stays, and the middle goes.
    cut = text.rfind("; valid:")
    tail = text[cut:] if cut > 0 else ""
    if len(tail) > limit // 2:
        tail = f"{tail[: limit // 2 - 3]}..."
    if not tail:
        return f"{text[: limit - 3]}..."
    return f"{text[:cut][: limit - len(tail) - 4]} ...{tail}"


def suggest(word: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``word``; empty when none is close."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
