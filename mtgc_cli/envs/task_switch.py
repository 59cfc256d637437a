"""A multi-task env whose tasks are separate envs with different dynamics.

Examples: FetchPush, FetchSlide and FetchPickAndPlace as three tasks, or several Meta-World MT1
envs. Each reset picks one sub-env and the episode runs in it. Because the dynamics differ,
``shares_dynamics`` is False: a transition may be relabeled with another goal of the same task
(HER) but never with another task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["TaskSwitchEnv"]


class TaskSwitchEnv(gym.Env):
    """Switch between sub-envs, one per task, at each reset.

    All sub-envs must have identical observation and action spaces; those become this env's.
    ``step`` returns the current sub-env's transition with ``info["task"]`` added (and
    ``info["is_success"]`` as a float when the sub-env reports it).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        task_names: Sequence[str],
        task: int | None = None,
    ) -> None:
        """Build the sub-envs (each once; only the fixed one when ``task`` is given).

        Args:
            env_fns: one constructor per task, in one-hot order.
            task_names: one distinct name per task.
            task: a fixed task index used at every reset unless ``options["task"]`` is given;
                ``None`` draws the task uniformly at each reset.

        Raises:
            ValueError: length mismatch, no tasks, repeated names, ``task`` out of range, or a
                sub-env whose observation or action space differs from the first one's.
        """
        task_names = tuple(task_names)
        if len(env_fns) != len(task_names):
            raise ValueError(f"Got {len(env_fns)} env_fns but {len(task_names)} task_names.")
        if not task_names:
            raise ValueError("TaskSwitchEnv needs at least one task.")
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"task_names must be distinct, got {list(task_names)}.")
        if task is not None and not 0 <= task < len(task_names):
            raise ValueError(f"task must be None or in [0, {len(task_names)}), got {task}")

        self._env_fns = tuple(env_fns)
        self._envs: list[gym.Env | None] = [None] * len(env_fns)
        # With a fixed task (evaluation slots) only that task's env is built: a Meta-World MT10
        # eval env would otherwise build 10 envs per slot. Otherwise all are built now, so a
        # mismatching space fails at construction rather than mid-training.
        self._reference = 0 if task is None else int(task)
        self.task_names: tuple[str, ...] = task_names
        first = self._env(self._reference)
        if task is None:
            for index in range(len(env_fns)):
                self._env(index)
        self.shares_dynamics: bool = False
        self.fixed_task = task
        self.task: int = 0 if task is None else int(task)
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.metadata = first.metadata
        self.render_mode = first.render_mode
        # Sub-env index -> seed for that sub-env's next reset. Filled on a seeded (or the first)
        # reset so that each sub-env is seeded once and then keeps its own random stream.
        self._pending_seeds: dict[int, int] = {}
        self._has_reset = False

    def _env(self, index: int) -> gym.Env:
        """Sub-env ``index``, built on first use and checked against the reference task's spaces."""
        env = self._envs[index]
        if env is None:
            env = self._env_fns[index]()
            self._envs[index] = env
            reference = self._envs[self._reference]
            assert reference is not None
            name, ref_name = self.task_names[index], self.task_names[self._reference]
            if env.observation_space != reference.observation_space:
                raise ValueError(
                    f"Task {name!r} has observation space {env.observation_space}, but task "
                    f"{ref_name!r} has {reference.observation_space}; all tasks must match."
                )
            if env.action_space != reference.action_space:
                raise ValueError(
                    f"Task {name!r} has action space {env.action_space}, but task "
                    f"{ref_name!r} has {reference.action_space}; all tasks must match."
                )
        return env

    @property
    def envs(self) -> tuple[gym.Env, ...]:
        """Every sub-env (building any not built yet)."""
        return tuple(self._env(i) for i in range(len(self._envs)))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Pick the task (``options["task"]``, else the fixed ``task``, else uniform) and reset it.

        On the first reset, and on any reset with a ``seed``, one integer seed per sub-env is
        drawn from ``self.np_random``; each sub-env receives its seed at its next reset. Other
        keys of ``options`` are passed to the sub-env.
        """
        super().reset(seed=seed)
        if seed is not None or not self._has_reset:
            seeds = self.np_random.integers(2**31 - 1, size=len(self._envs))
            self._pending_seeds = {i: int(s) for i, s in enumerate(seeds)}
            self._has_reset = True
        sub_options = None
        if options is not None and options.get("task") is not None:
            task = int(options["task"])
            if not 0 <= task < len(self._envs):
                raise ValueError(f"options['task'] must be in [0, {len(self._envs)}), got {task}")
            self.task = task
        elif self.fixed_task is not None:
            self.task = self.fixed_task
        else:
            self.task = int(self.np_random.integers(len(self._envs)))
        if options is not None:
            # The sub-env is a single task; do not let it reinterpret our task index.
            sub_options = {k: v for k, v in options.items() if k != "task"} or None
        obs, info = self._env(self.task).reset(
            seed=self._pending_seeds.pop(self.task, None), options=sub_options
        )
        return obs, {**info, "task": self.task}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the current task's sub-env."""
        obs, reward, terminated, truncated, info = self._env(self.task).step(action)
        info = {**info, "task": self.task}
        if "is_success" in info:
            info["is_success"] = float(info["is_success"])
        return obs, float(reward), terminated, truncated, info

    def render(self) -> Any:
        """Render the current task's sub-env."""
        return self._env(self.task).render()

    def close(self) -> None:
        """Close every sub-env."""
        for env in self._envs:
            if env is not None:
                env.close()

    def _compute_reward_fn(self, task: int) -> Callable[..., Any]:
        """The ``compute_reward`` of sub-env ``task``, found through its wrappers."""
        try:
            return self._env(task).get_wrapper_attr("compute_reward")
        except AttributeError:
            raise AttributeError(
                f"The sub-env of task {self.task_names[task]!r} has no compute_reward; "
                "TaskSwitchEnv.compute_reward and task_reward need goal envs."
            ) from None

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> Any:
        """The current task's ``compute_reward`` (GoalEnv convention, batched over leading axes)."""
        return self._compute_reward_fn(self.task)(achieved_goal, desired_goal, info)

    def task_reward(self, task: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        """Within-task rewards for a batch: each row uses its own task's ``compute_reward``.

        Args:
            task: (B,) int task indices.
            next_obs: dict with ``achieved_goal`` (B, G) and ``desired_goal`` (B, G), raw.

        Returns:
            (B,) float32 rewards.
        """
        task = np.asarray(task, dtype=np.int64)
        achieved, desired = next_obs["achieved_goal"], next_obs["desired_goal"]
        rewards = np.empty(task.shape[0], dtype=np.float32)
        for t in np.unique(task):
            rows = task == t
            n = int(rows.sum())
            rewards[rows] = self._compute_reward_fn(int(t))(achieved[rows], desired[rows], [{}] * n)
        return rewards
