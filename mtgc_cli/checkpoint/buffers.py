"""Replay buffers pickled without the rows they have never written."""

from __future__ import annotations

from typing import IO, Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import save_to_pkl


def _is_rows(value: Any, buffer: ReplayBuffer) -> bool:
    """Whether ``value`` is a per-row array of ``buffer``: shape (buffer_size, n_envs, ...)."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim >= 2
        and value.shape[:2] == (buffer.buffer_size, buffer.n_envs)
    )


def _pad(part: np.ndarray, size: int, fill: np.ndarray) -> np.ndarray:
    """``part`` (rows, ...) grown to ``size`` rows, the new rows set to ``fill`` (one row)."""
    if fill.any():
        out = np.empty((size, *part.shape[1:]), dtype=part.dtype)
        out[len(part) :] = fill
    else:
        out = np.zeros((size, *part.shape[1:]), dtype=part.dtype)  # untouched pages cost nothing
    out[: len(part)] = part
    return out


def _expand(cls: type, state: dict[str, Any], size: int, fills: dict[str, Any]) -> ReplayBuffer:
    """Unpickling side of :class:`_CompactBuffer`: the buffer at its full size again."""
    for name, fill in fills.items():
        value = state[name]
        if isinstance(fill, dict):
            state[name] = {key: _pad(value[key], size, fill[key]) for key in value}
        else:
            state[name] = _pad(value, size, fill)
    buffer = cls.__new__(cls)
    setstate = getattr(buffer, "__setstate__", None)
    if setstate is not None:
        setstate(state)  # HerReplayBuffer's: leaves env unset until set_env
    else:
        buffer.__dict__.update(state)
    return buffer


class _CompactBuffer:
    """Pickles a replay buffer that is not yet full without the rows it has never written.

    SB3 allocates every row up front, so a buffer of 1e6 rows pickles 1e6 rows even at 3% full.
    This pickles as a call to :func:`_expand` with each per-row array cut at ``pos`` and its
    fill value (the value of a never-written row: 0, or -1 for the task ids); loading the file
    with SB3's ``load_from_pkl`` / ``load_replay_buffer`` gives the buffer back at full size.
    """

    def __init__(self, buffer: ReplayBuffer):
        self.buffer = buffer

    def __reduce__(self) -> tuple[Any, ...]:
        buffer = self.buffer
        rows = buffer.pos
        state = dict(buffer.__getstate__())  # type: ignore[call-overload]  # HER's drops the env
        fills: dict[str, Any] = {}
        for name, value in state.items():
            if _is_rows(value, buffer):
                state[name], fills[name] = value[:rows], value[rows].copy()
            elif isinstance(value, dict) and value and all(_is_rows(v, buffer) for v in value.values()):
                state[name] = {key: v[:rows] for key, v in value.items()}
                fills[name] = {key: v[rows].copy() for key, v in value.items()}
        return (_expand, (type(buffer), state, buffer.buffer_size, fills))


def save_buffer(buffer: ReplayBuffer, f: IO[bytes]) -> None:
    # With optimize_memory_usage the next observation of the last row lives in row pos, so
    # such a buffer is written whole.
    compact = not buffer.full and not getattr(buffer, "optimize_memory_usage", False)
    save_to_pkl(f, _CompactBuffer(buffer) if compact else buffer)  # type: ignore[arg-type]
