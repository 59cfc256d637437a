"""What a value must be, in words, for one pydantic validation error: the ``valid: ...`` of a line.

Pydantic says ``Input should be greater than 0``; an mtgc error line says what the value is and
what would do, in the form the SB3 argument rules use (``algo.batch_size is 0; valid: int >= 1``):
``train.eval_every is 0; valid: int > 0``.
"""

from __future__ import annotations

from typing import Any

_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}
_TYPES = {
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int (a whole number)",
    "float_type": "number",
    "float_parsing": "number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping, e.g. {key: value}",
    "list_type": "a list, e.g. [a, b]",
    "model_type": "a mapping (a section of keys)",
    "model_attributes_type": "a mapping (a section of keys)",
}


def _kind(annotation: Any) -> str:
    """``int`` or ``number``: the field's type, as the rules write it."""
    names = {getattr(a, "__name__", "") for a in (annotation, *getattr(annotation, "__args__", ()))}
    return "int" if "int" in names and "float" not in names else "number"


def valid_for(error: dict[str, Any], annotation: Any = None) -> str | None:
    """``int > 0`` for a ``greater_than`` error on an int field; None where there is no wording."""
    kind = error["type"]
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return f"{_kind(annotation)} {symbol} {error.get('ctx', {}).get(key)}"
    if kind in _TYPES:
        wording = _TYPES[kind]
        numeric = kind in ("int_type", "int_parsing", "float_type", "float_parsing")
        if numeric and type(None) in getattr(annotation, "__args__", ()):
            wording += " or null (the default)"
        return wording
    return None
