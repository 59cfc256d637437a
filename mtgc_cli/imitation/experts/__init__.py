"""Scripted experts: which controller demonstrates which env (or task of a multi-task env).

An expert maps one observation (as mtgc's env builder makes it, with the task's vector under
``task`` for multi-task envs) to one action. For a multi-task env the expert reads the task index
back from that vector (one-hot or language, with the env's own encoding) and hands the observation
to that task's controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from mtgc_cli.config import EnvConfig
from mtgc_cli.envs.task_encoding import nearest_task
from mtgc_cli.errors import UsageError
from mtgc_cli.imitation.experts import fetch
from mtgc_cli.imitation.experts.point import PointTasksExpert

Expert = Callable[[dict[str, Any]], np.ndarray]

# Single-task envs by id, and the named tasks of mtgc's Fetch scene.
BY_ENV_ID: dict[str, Expert] = {
    "FetchReach-v4": fetch.reach,
    "FetchPush-v4": fetch.push,
    "FetchPickAndPlace-v4": fetch.pick_and_place,
}
FETCH_TASKS: dict[str, Expert] = {"reach": fetch.reach, "push": fetch.push, "lift": fetch.pick_and_place}
POINT_TASKS_ID = "mtgc/PointTasks-v0"
FETCH_TASKS_ID = "mtgc/FetchTasks-v0"
SUPPORTED = [*BY_ENV_ID, f"{POINT_TASKS_ID} (every task)", f"{FETCH_TASKS_ID} ({', '.join(FETCH_TASKS)})"]


def _unsupported(what: str) -> UsageError:
    return UsageError(
        f"no scripted expert for {what}; valid: {', '.join(SUPPORTED)}, or --policy RUN for a trained run"
    )


class TaskDispatch:
    """Hands each observation to the controller of the task its task vector encodes."""

    def __init__(self, experts: list[Expert], task_vectors: np.ndarray, task_key: str = "task") -> None:
        self.experts = experts
        self.task_vectors = task_vectors
        self.task_key = task_key

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        return self.experts[int(nearest_task(obs[self.task_key], self.task_vectors))](obs)


def make_expert(cfg: EnvConfig, env: gym.Env) -> Expert:
    """The scripted expert for the env of ``cfg``; ``env`` (built from ``cfg``) gives its constants.

    Raises:
        UsageError: an env or task without a scripted expert.
    """
    if cfg.time_feature or cfg.action_repeat != 1:
        # The controllers read the Fetch observation layout and act every env step.
        raise UsageError("scripted experts need env.time_feature false and env.action_repeat 1")
    if cfg.tasks is None:
        if cfg.id not in BY_ENV_ID:
            raise _unsupported(str(cfg.id))
        return BY_ENV_ID[cfg.id]
    # The task vectors that the env appends (one-hot or language): the experts read tasks with them.
    vectors = env.get_wrapper_attr("task_vectors")
    if cfg.tasks[0].id is not None:  # separate envs, one per task
        missing = [str(task.id) for task in cfg.tasks if task.id not in BY_ENV_ID]
        if missing:
            raise _unsupported(", ".join(missing))
        return TaskDispatch([BY_ENV_ID[str(task.id)] for task in cfg.tasks], vectors)
    if cfg.id == POINT_TASKS_ID:
        point = env.unwrapped
        return PointTasksExpert(point.targets, point.step_size, vectors)  # type: ignore[attr-defined]
    if cfg.id == FETCH_TASKS_ID:
        return TaskDispatch([FETCH_TASKS[name] for name in cfg.task_labels], vectors)
    raise _unsupported(str(cfg.id))
