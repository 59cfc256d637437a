"""Several goal-conditioned tasks on one Fetch pick-and-place scene, with shared dynamics.

The robot, block and gripper settings are those of ``FetchPickAndPlace-v4`` for every task (gripper
free, started 0.2 m above the table), so a transition collected under one task is a valid
transition under any other and can be relabeled with that task's achieved goal and reward.

Tasks, each with its own achieved goal (read from the 25-dim observation) and goal distribution:

- ``reach``: achieved goal = gripper position ``observation[0:3]``; goal = initial gripper
  position + uniform(-0.15, 0.15) in x and y and uniform(-0.1, 0.15) in z (the lower bound is
  tighter than FetchReach's so the goal stays above the block and table).
- ``push``: achieved goal = block position ``observation[3:6]``; goal on the table (z = the
  block's initial height), xy = initial gripper xy + uniform(-0.15, 0.15), as in FetchPush.
  Success also needs the block *on the table* (not lifted, see below).
- ``lift``: achieved goal = block position; goal in the air, xy as for push and
  z = block's initial height + uniform(0.1, 0.3), like FetchPickAndPlace with the target always
  in the air (0.1 m minimum so the resting block never counts as lifted). Success also needs the
  block *lifted*.

The block counts as lifted when its centre is at least 0.05 m above its resting height. Push and
lift share the achieved goal, so without this rule their rewards would be equal for every state
and goal and cross-task relabeling could not tell them apart; with it, no state succeeds at both.
On each task's own goals the sparse reward is unchanged: a lift goal is at least 0.1 m up, so
within the 0.05 m threshold the block is lifted anyway, and a push goal is on the table, so within
the threshold the block is at most 0.05 m up. The dense reward adds the block's vertical distance
to the allowed side of that height.

The env never truncates itself: like gymnasium-robotics' Fetch envs it relies on a ``TimeLimit``
(50 steps in mtgc's registration); no ``max_episode_steps`` argument is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.ezpickle import EzPickle
from gymnasium_robotics.envs.fetch.pick_and_place import MujocoFetchPickAndPlaceEnv

__all__ = ["FETCH_TASKS", "FETCH_TASK_DESCRIPTIONS", "FetchTasksEnv"]

FETCH_TASKS: tuple[str, ...] = ("reach", "push", "lift")
"""The available task names, in their default order."""

FETCH_TASK_DESCRIPTIONS: dict[str, str] = {
    "reach": "move the gripper to the target",
    "push": "push the block to the target on the table",
    "lift": "lift the block up to the target in the air",
}
"""What each task asks, in words: the sentence a language task encoding embeds."""

# Where each task's achieved goal starts in the 25-dim observation: gripper xyz or block xyz.
_ACHIEVED_GOAL_START = {"reach": 0, "push": 3, "lift": 3}
_TARGET_RANGE = 0.15
_REACH_Z_RANGE = (-0.1, 0.15)
_LIFT_HEIGHT_RANGE = (0.1, 0.3)
# Height (m) above its resting height from which the block counts as lifted: the bottom of the
# 5 cm cube is then 2.5 cm clear of the table, above what tilting it while pushing gives (about 1 cm).
_LIFTED = 0.05
# What each task asks of the block's height: +1 lifted, -1 not lifted (on the table), 0 nothing.
_HEIGHT_RULE = {"reach": 0, "push": -1, "lift": 1}


def _goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis: (..., 3), (..., 3) -> (...)."""
    return np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)


class FetchTasksEnv(MujocoFetchPickAndPlaceEnv):
    """Reach, push and lift on one Fetch scene; the task is chosen at reset before the goal.

    Observation ``Dict``: ``observation`` (25,), ``achieved_goal`` (3,) under the current task,
    ``desired_goal`` (3,); all float64 as in gymnasium-robotics. Action ``Box(-1, 1, (4,))``.
    Reward with ``d = ||achieved_goal - desired_goal||`` and ``h`` the block's vertical distance to
    the side of the lifted height that the task asks for (0 when on that side, and always 0 for
    reach): sparse ``-(d > distance_threshold or not on that side)`` (0 or -1), dense ``-(d + h)``,
    float32. ``info["is_success"]`` is 1.0 exactly where the sparse reward is 0.
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        task: int | None = None,
        reward_type: str = "sparse",
        distance_threshold: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """Build the scene.

        Args:
            tasks: the task names in one-hot order, a subset of ``FETCH_TASKS``; ``None`` for all.
            task: a fixed task index used at every reset unless ``options["task"]`` is given;
                ``None`` draws the task uniformly at each reset.
            reward_type: ``"sparse"`` or ``"dense"``.
            distance_threshold: success radius in metres (> 0).
            **kwargs: passed to ``MujocoFetchPickAndPlaceEnv`` (``render_mode``, ``width``, ...).

        Raises:
            ValueError: unknown or repeated task names, an empty task list, a task index out of
                range, a bad reward type or threshold.
        """
        task_names = FETCH_TASKS if tasks is None else tuple(tasks)
        unknown = [name for name in task_names if name not in FETCH_TASKS]
        if unknown:
            raise ValueError(f"Unknown Fetch task(s) {unknown}; valid tasks are {list(FETCH_TASKS)}.")
        if not task_names:
            raise ValueError(f"tasks must name at least one of {list(FETCH_TASKS)}.")
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"tasks must not repeat a name, got {list(task_names)}.")
        if task is not None and not 0 <= task < len(task_names):
            raise ValueError(f"task must be None or in [0, {len(task_names)}), got {task}")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if distance_threshold <= 0.0:
            raise ValueError(f"distance_threshold must be > 0, got {distance_threshold}")

        # Set before the parent constructor: it calls _get_obs, which needs the current task.
        self.task_names: tuple[str, ...] = task_names
        self.task_descriptions: tuple[str, ...] = tuple(FETCH_TASK_DESCRIPTIONS[n] for n in task_names)
        self.shares_dynamics: bool = True
        self.fixed_task = task
        self.task: int = 0 if task is None else int(task)
        # (n_tasks,) start index of each task's achieved goal in the observation vector.
        self._ag_start = np.array([_ACHIEVED_GOAL_START[name] for name in task_names], dtype=np.int64)
        # (n_tasks,) +1 / -1 / 0: the block must be lifted / must not be / no rule.
        self._height_rule = np.array([_HEIGHT_RULE[name] for name in task_names], dtype=np.int64)

        super().__init__(reward_type=reward_type, **kwargs)
        # The parent hard-codes 0.05; compute_reward and _is_success read this attribute.
        self.distance_threshold = float(distance_threshold)
        # Record our own arguments for pickling (the parent recorded only reward_type and kwargs).
        EzPickle.__init__(
            self,
            tasks=task_names,
            task=task,
            reward_type=reward_type,
            distance_threshold=distance_threshold,
            **kwargs,
        )

    # ---- task selection -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Pick the task (``options["task"]``, else the fixed ``task``, else uniform), then reset.

        The task is drawn before the parent reset places the block and samples the goal, because
        ``_sample_goal`` and ``_get_obs`` depend on it.
        """
        if seed is not None:
            # Seed here so the task draw is reproducible; the parent reset then gets seed=None
            # and does not reseed.
            gym.Env.reset(self, seed=seed)
        if options is not None and options.get("task") is not None:
            task = int(options["task"])
            if not 0 <= task < len(self.task_names):
                raise ValueError(f"options['task'] must be in [0, {len(self.task_names)}), got {task}")
            self.task = task
        elif self.fixed_task is not None:
            self.task = self.fixed_task
        else:
            self.task = int(self.np_random.integers(len(self.task_names)))
        obs, info = super().reset(seed=None, options=options)
        return obs, {**info, "task": self.task}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Step the scene; reward and ``is_success`` are the current task's."""
        obs, reward, terminated, truncated, info = super().step(action)
        info = {**info, "is_success": float(info["is_success"]), "task": self.task}
        return obs, float(reward), terminated, truncated, info

    # ---- per-task goals -------------------------------------------------------------------

    def _sample_goal(self) -> np.ndarray:
        """Sample the current task's goal (3,) around the initial gripper position."""
        name = self.task_names[self.task]
        goal = self.initial_gripper_xpos[:3].copy()
        goal[:2] += self.np_random.uniform(-_TARGET_RANGE, _TARGET_RANGE, size=2)
        if name == "reach":
            goal[2] += self.np_random.uniform(*_REACH_Z_RANGE)
        elif name == "push":
            goal[2] = self.height_offset
        else:  # lift
            goal[2] = self.height_offset + self.np_random.uniform(*_LIFT_HEIGHT_RANGE)
        return goal

    def _get_obs(self) -> dict[str, np.ndarray]:
        """The parent observation with ``achieved_goal`` replaced by the current task's."""
        obs = super()._get_obs()
        start = self._ag_start[self.task]
        obs["achieved_goal"] = obs["observation"][start : start + 3].copy()
        return obs

    def task_achieved_goal(self, task: np.ndarray, observation: np.ndarray) -> np.ndarray:
        """Achieved goal of each row under that row's task, from the observation vector alone.

        Args:
            task: (B,) int task indices.
            observation: (B, 25) stored ``observation`` vectors.

        Returns:
            (B, 3): gripper position for reach rows, block position for push and lift rows.
        """
        observation = np.asarray(observation)
        start = self._ag_start[np.asarray(task, dtype=np.int64)]
        cols = start[:, None] + np.arange(3)
        return np.take_along_axis(observation, cols, axis=1)

    # ---- rewards --------------------------------------------------------------------------

    def _outcome(
        self, task: np.ndarray | int, achieved_goal: np.ndarray, desired_goal: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Goal distance and height condition of (..., 3) goals under ``task`` (an int or (...) ints).

        Returns:
            ``d`` (...), the goal distance; ``h`` (...) >= 0, the block's vertical distance to the
            side of the lifted height that the task asks for; ``ok`` (...) bool, the block on that
            side (always True for reach).
        """
        achieved_goal = np.asarray(achieved_goal)
        d = _goal_distance(achieved_goal, desired_goal)
        rule = self._height_rule[np.asarray(task, dtype=np.int64)]
        # For push and lift the achieved goal is the block, so its z is the block's height.
        above = achieved_goal[..., 2] - (self.height_offset + _LIFTED)
        ok = np.where(rule > 0, above >= 0.0, np.where(rule < 0, above < 0.0, True))
        h = np.where(rule > 0, np.maximum(-above, 0.0), np.where(rule < 0, np.maximum(above, 0.0), 0.0))
        return d, h, ok

    def _reward(
        self, task: np.ndarray | int, achieved_goal: np.ndarray, desired_goal: np.ndarray
    ) -> np.ndarray:
        """Sparse or dense reward, float32 (...), of :meth:`_outcome`."""
        d, h, ok = self._outcome(task, achieved_goal, desired_goal)
        if self.reward_type == "dense":
            return (-(d + h)).astype(np.float32)
        success = (d <= self.distance_threshold) & ok
        # success - 1 is the sparse -(fail) without the -0.0 that negating False gives.
        return success.astype(np.float32) - np.float32(1.0)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Reward of (..., 3) achieved vs desired goals under the *current* task, float32 (...).

        It serves SB3's HerReplayBuffer only for a fixed task (``task=...``); with several tasks
        the multi-task buffer calls :meth:`task_reward`, which takes each row's task.
        """
        return self._reward(self.task, achieved_goal, desired_goal)

    def _is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        """1.0 exactly where the sparse reward is 0 (the parent uses ``d < threshold``; ``<=`` matches)."""
        d, _, ok = self._outcome(self.task, achieved_goal, desired_goal)
        return ((d <= self.distance_threshold) & ok).astype(np.float32)

    def task_reward(self, task: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        """Rewards ``step`` would have given for a batch of next observations, per row's task.

        Args:
            task: (B,) int task indices; each row's achieved goal is read from its stored
                ``observation`` under that task, so a stale ``achieved_goal`` cannot leak in.
            next_obs: dict with ``observation`` (B, 25) and ``desired_goal`` (B, 3), raw.

        Returns:
            (B,) float32 rewards.
        """
        achieved = self.task_achieved_goal(task, next_obs["observation"])
        return self._reward(task, achieved, next_obs["desired_goal"])

    def task_terminated(self, task: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        """(B,) bool, all False: like gymnasium-robotics' Fetch envs, no task ever terminates."""
        return np.zeros(len(task), dtype=bool)
