"""The scripted expert for ``mtgc/PointTasks-v0``: move straight to the current task's target."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtgc_cli.envs.task_encoding import nearest_task


class PointTasksExpert:
    """``a = clip((target_k - pos) / step_size, -1, 1)`` for the task ``k`` the observation encodes.

    The position is read from the observation and the task from its ``task`` vector; the targets
    and the step size are constants of the env (the goal is not in PointTasks' observation). The
    clipped step lands on the target when it is within one step, and then stays there (action 0),
    so the episode ends on the target: success at the episode's end.
    """

    def __init__(self, targets: np.ndarray, step_size: float, task_vectors: np.ndarray | None = None) -> None:
        """``targets``: (n_tasks, 2) target positions in task order; ``step_size``: the env's;
        ``task_vectors``: (n_tasks, dim) the env's task encoding (default: one-hots)."""
        self.targets = np.asarray(targets, dtype=np.float32)
        self.step_size = float(step_size)
        self.task_vectors = (
            np.eye(len(self.targets), dtype=np.float32) if task_vectors is None else task_vectors
        )

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """(2,) float32 action for one observation ``{"observation": (2,), "task": (dim,)}``."""
        task = int(nearest_task(obs["task"], self.task_vectors))
        move = (self.targets[task] - np.asarray(obs["observation"], dtype=np.float32)) / self.step_size
        return np.clip(move, -1.0, 1.0).astype(np.float32)
