"""The scripted expert for ``mtgc/PointTasks-v0``: move straight to the current task's target."""

from __future__ import annotations

from typing import Any

import numpy as np


class PointTasksExpert:
    """``a = clip((target_k - pos) / step_size, -1, 1)`` for the task ``k`` in the one-hot.

    The position is read from the observation and the task from its ``task`` one-hot; the targets
    and the step size are constants of the env (the goal is not in PointTasks' observation). The
    clipped step lands on the target when it is within one step, and then stays there (action 0),
    so the episode ends on the target: success at the episode's end.
    """

    def __init__(self, targets: np.ndarray, step_size: float) -> None:
        """``targets``: (n_tasks, 2) target positions in one-hot order; ``step_size``: the env's."""
        self.targets = np.asarray(targets, dtype=np.float32)
        self.step_size = float(step_size)

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """(2,) float32 action for one observation ``{"observation": (2,), "task": (n_tasks,)}``."""
        task = int(np.argmax(obs["task"]))
        move = (self.targets[task] - np.asarray(obs["observation"], dtype=np.float32)) / self.step_size
        return np.clip(move, -1.0, 1.0).astype(np.float32)
