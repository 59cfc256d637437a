"""Non-finite numbers: refused in a preset, and caught in a model's weights while it trains.

``--set algo.learning_rate=.inf`` used to train a model whose every weight was NaN and exit 0.
A preset is walked whole (every section, including the dict-valued ``env.kwargs`` and the SB3
keyword arguments under ``algo``), so no float setting anywhere can be ``inf`` or ``nan``. A
run whose weights stop being finite anyway (a learning rate that is finite but far too large)
is stopped at the next evaluation or checkpoint, before a non-finite checkpoint is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def first_non_finite(value: Any, path: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The dotted key and value of the first ``inf`` or ``nan`` float in nested dicts and lists."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (".".join(path), value)
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = first_non_finite(item, (*path, key))
        if found is not None:
            return found
    return None


def non_finite_message(data: Any) -> str | None:
    """``algo.learning_rate is inf; valid: a finite number`` for the first non-finite value, or None."""
    found = first_non_finite(data)
    if found is None:
        return None
    key, value = found
    return f"{key} is {value}; valid: a finite number"


def non_finite_parameter(named_parameters: Iterable[tuple[str, Any]]) -> str | None:
    """The name of the first torch parameter holding an ``inf`` or ``nan``, or None.

    One reduction per tensor, on the tensor's device: cheap next to an evaluation.
    """
    import torch

    for name, parameter in named_parameters:
        if not bool(torch.isfinite(parameter).all()):
            return name
    return None
