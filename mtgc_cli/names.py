"""Names that become paths: one check for every user string that names a folder or file.

A run's ``name:`` (``runs/<name>/``), ``compare --name`` (``runs/compare/<name>/``) and each part
of a dataset id (``data/<namespace>/<name>-v0/``) are joined to a folder the user chose. Unchecked,
``../../x`` or ``/abs/path`` would write outside it. A name is one path component of safe
characters, so it can only ever name an entry directly inside that folder.
"""

from __future__ import annotations

import re

from mtgc_cli.errors import UsageError, excerpt

MAX_LENGTH = 100
_SAFE = re.compile(r"[A-Za-z0-9._-]+")
VALID = f"valid: 1-{MAX_LENGTH} characters of A-Z a-z 0-9 . _ -, not '.' or '..', e.g. my-run"


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be one safe path component, or None when it can."""
    if not isinstance(value, str):
        return f"is {excerpt(value)}, not a string"
    if not value:
        return "is empty"
    if len(value) > MAX_LENGTH:
        return f"is {len(value)} characters long"
    if value in (".", ".."):
        return f"is {value!r}, which names a folder, not an entry in it"
    if "/" in value or "\\" in value:
        return f"is {excerpt(value)}: a path, not one name"
    if not _SAFE.fullmatch(value):
        bad = sorted({c for c in value if not _SAFE.fullmatch(c)})
        return f"is {excerpt(value)}, with {excerpt(''.join(bad[:5]), 20)} outside the safe characters"
    return None


def check_name(value: object, what: str) -> str:
    """``value`` if it is a safe name, else :class:`UsageError` naming ``what`` (e.g. ``--name``)."""
    problem = name_problem(value)
    if problem is not None:
        raise UsageError(f"{what} {problem}; {VALID}")
    assert isinstance(value, str)
    return value
