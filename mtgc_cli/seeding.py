"""Every random stream of a run, derived from its one seed with numpy's ``SeedSequence``.

Seeds made by arithmetic (``seed + 10_000 + slot``) overlap between runs: seed 0's eval slot
k + 1 was seed 1's slot k. ``SeedSequence(seed, spawn_key=(stream, slot))`` gives statistically
independent streams for every (run seed, purpose, slot), the same on every machine, and it is
what ``SeedSequence(seed).spawn()`` would hand out, without the bookkeeping of spawn counters.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """What a seed is for; each gets its own independent family of seeds."""

    TRAIN = 0  # training envs, one seed per vec-env slot
    EVAL = 1  # the evaluation envs used during training
    EVAL_COMMAND = 2  # `mtgc eval --seed N`: never the goals the run trained or was selected on
    TASK_SET = 3  # envs that draw a set of task variations at construction (Meta-World)
    SELECTION = 4  # the fresh episodes that confirm a best-model candidate


def derive(seed: int, stream: Stream, index: int = 0) -> int:
    """A 32-bit seed for slot ``index`` of ``stream`` under the run seed ``seed``."""
    if seed < 0:
        raise ValueError(f"seeds are non-negative integers, got {seed}")
    sequence = np.random.SeedSequence(seed, spawn_key=(int(stream), index))
    return int(sequence.generate_state(1)[0])


def slot_seeds(seed: int, stream: Stream, n: int) -> list[int]:
    """One seed per vec-env slot."""
    return [derive(seed, stream, i) for i in range(n)]
