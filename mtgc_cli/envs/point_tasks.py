"""A cheap numpy-only multi-task env: a point in the plane that must reach one of several targets.

All tasks share the dynamics and differ only in the target, so transitions collected for one task
can be relabeled with any other task's reward (``shares_dynamics = True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["PointTasksEnv"]

_COMPASS_NAMES = ("east", "north", "west", "south")


def _description(name: str, angle: float) -> str:
    """What a task asks, in words: the sentence a language task encoding embeds."""
    if name in _COMPASS_NAMES:
        return f"move to the {name} target"
    return f"move to the target at {round(float(np.degrees(angle)))} degrees"


def _distance(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis: (..., 2), (..., 2) -> (...).

    ``step`` and ``task_reward`` both go through this one function so that the relabeled reward
    is bit-identical to the one the env returned.
    """
    return np.sqrt(np.sum(np.square(pos - target), axis=-1))


class PointTasksEnv(gym.Env):
    """Move a point in ``[-1, 1]^2`` to the target of the current task.

    - Action: ``Box(-1, 1, (2,), float32)``; ``pos' = clip(pos + step_size * clip(a, -1, 1), -1, 1)``.
    - Observation: ``Dict({"observation": Box(-1, 1, (2,), float32)})``, the position only; the task
      is not in the observation (wrap with ``TaskOneHot`` to show it to the policy).
    - Tasks: ``n_tasks`` targets evenly spaced on a circle of radius ``radius``, task ``k`` at angle
      ``2 pi k / n_tasks`` (for 4 tasks: east, north, west, south), each described in words in
      ``task_descriptions`` ("move to the east target").
    - Reward for task ``k`` with ``d = ||pos' - target_k||``: sparse ``-(d > distance_threshold)``
      (0 or -1), dense ``-d``. ``info["is_success"] = float(d <= distance_threshold)``.
    - Episodes end by truncation after ``max_episode_steps`` steps (the env truncates itself, with
      or without a ``TimeLimit``); with ``terminate_on_success`` they also terminate when the point
      is within ``distance_threshold`` of the current task's target.
    """

    # rgb_array: a top view (see ``render``), for eval videos; 10 steps a second.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    render_size = 240  # pixels per side of the rendered [-1, 1]^2

    def __init__(
        self,
        n_tasks: int = 4,
        radius: float = 0.6,
        distance_threshold: float = 0.1,
        step_size: float = 0.1,
        reward_type: str = "sparse",
        task: int | None = None,
        max_episode_steps: int = 30,
        tasks: Sequence[str] | None = None,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
    ) -> None:
        """Build the env.

        Args:
            n_tasks: number of targets (>= 2).
            radius: radius of the target circle, in (0, 1] so every target is inside the square.
            distance_threshold: success radius around a target (> 0).
            step_size: largest move per step along each axis (> 0).
            reward_type: ``"sparse"`` or ``"dense"``.
            task: a fixed task index used at every reset unless ``options["task"]`` is given;
                ``None`` draws the task uniformly at each reset.
            max_episode_steps: the env truncates after this many steps (>= 1).
            tasks: names of the tasks to keep, in one-hot order (a preset's ``env.tasks``);
                ``None`` keeps all ``n_tasks``.
            terminate_on_success: end the episode (``terminated``) when the current task's target
                is reached; relabeling then recomputes termination with ``task_terminated``.
            render_mode: ``None`` or ``"rgb_array"`` (``render`` returns a top view).

        Raises:
            ValueError: any argument out of range.
        """
        if int(n_tasks) != n_tasks or n_tasks < 2:
            raise ValueError(f"n_tasks must be an integer >= 2, got {n_tasks}")
        if not 0.0 < radius <= 1.0:
            raise ValueError(f"radius must be in (0, 1] so the targets lie in [-1, 1]^2, got {radius}")
        if distance_threshold <= 0.0:
            raise ValueError(f"distance_threshold must be > 0, got {distance_threshold}")
        if step_size <= 0.0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if int(max_episode_steps) != max_episode_steps or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an integer >= 1, got {max_episode_steps}")
        n_tasks = int(n_tasks)
        all_names = _COMPASS_NAMES if n_tasks == 4 else tuple(f"target-{k}" for k in range(n_tasks))
        angles = 2.0 * np.pi * np.arange(n_tasks) / n_tasks
        if tasks is not None:
            unknown = [name for name in tasks if name not in all_names]
            if unknown or len(tasks) < 2:
                raise ValueError(f"tasks must name at least two of {list(all_names)}, got {list(tasks)}")
            keep = [all_names.index(name) for name in tasks]
            all_names, angles, n_tasks = tuple(tasks), angles[keep], len(keep)
        if task is not None and not 0 <= task < n_tasks:
            raise ValueError(f"task must be None or in [0, {n_tasks}), got {task}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode

        self.n_tasks = n_tasks
        self.radius = float(radius)
        self.distance_threshold = float(distance_threshold)
        self.step_size = float(step_size)
        self.reward_type = reward_type
        self.fixed_task = task
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_on_success = bool(terminate_on_success)

        self.task_names: tuple[str, ...] = all_names
        self.task_descriptions: tuple[str, ...] = tuple(map(_description, all_names, angles))
        self.shares_dynamics: bool = True
        self.task: int = 0 if task is None else int(task)

        # (n_tasks, 2) float32, the same dtype as the observation so distances are computed alike.
        self.targets: np.ndarray = (self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(
            np.float32
        )

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {"observation": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)}
        )

        self._pos: np.ndarray | None = None
        self._elapsed = 0
        self._pixels: list[np.ndarray] | None = None  # render's pixel coordinates, made once

    def _reward_and_success(self, pos: np.ndarray) -> tuple[float, float]:
        """Reward and success of position (2,) under the current task."""
        d = _distance(pos, self.targets[self.task])
        success = (d <= self.distance_threshold).astype(np.float32)
        # success - 1 is the sparse -(d > eps) without the -0.0 that negating False gives.
        reward = -d if self.reward_type == "dense" else success - 1.0
        return float(reward), float(success)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Pick the task and put the point uniformly in ``[-0.1, 0.1]^2``.

        The task is ``options["task"]`` if given, else the constructor's ``task``, else uniform.
        """
        super().reset(seed=seed)
        if options is not None and options.get("task") is not None:
            task = int(options["task"])
            if not 0 <= task < self.n_tasks:
                raise ValueError(f"options['task'] must be in [0, {self.n_tasks}), got {task}")
            self.task = task
        elif self.fixed_task is not None:
            self.task = self.fixed_task
        else:
            self.task = int(self.np_random.integers(self.n_tasks))
        self._pos = self.np_random.uniform(-0.1, 0.1, size=2).astype(np.float32)
        self._elapsed = 0
        return {"observation": self._pos.copy()}, {"task": self.task}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Move the point; reward and success are those of the current task at the new position."""
        if self._pos is None:
            raise RuntimeError("PointTasksEnv.step() called before reset().")
        move = self.step_size * np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self._pos = np.clip(self._pos + move, -1.0, 1.0).astype(np.float32, copy=False)
        self._elapsed += 1
        reward, success = self._reward_and_success(self._pos)
        terminated = self.terminate_on_success and success == 1.0
        truncated = self._elapsed >= self.max_episode_steps
        info = {"task": self.task, "is_success": success}
        return {"observation": self._pos.copy()}, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """A top view of ``[-1, 1]^2``, (render_size, render_size, 3) uint8, ``rgb_array`` mode only.

        Each target is a disc of the success radius: the current task's orange, the others grey;
        the point is a blue dot. North is up.
        """
        if self.render_mode != "rgb_array":
            return None
        size = self.render_size
        if self._pixels is None:
            # Pixel centres in env coordinates: x to the right, y up.
            coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
            self._pixels = np.meshgrid(coords, coords[::-1])
        x, y = self._pixels
        image = np.full((size, size, 3), 235, dtype=np.uint8)
        for k, target in enumerate(self.targets):
            inside = np.hypot(x - target[0], y - target[1]) <= self.distance_threshold
            image[inside] = (255, 150, 40) if k == self.task else (190, 190, 190)
        if self._pos is not None:
            dot = np.hypot(x - self._pos[0], y - self._pos[1]) <= max(0.03, 2.5 / size)
            image[dot] = (40, 90, 220)
        return image

    def task_reward(self, task: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        """Rewards that ``step`` would have given under other tasks, for a batch of next observations.

        Args:
            task: (B,) int task indices.
            next_obs: ``{"observation": (B, 2)}`` raw positions after the step.

        Returns:
            (B,) float32 rewards: sparse ``-(d > distance_threshold)`` or dense ``-d``.
        """
        pos = np.asarray(next_obs["observation"], dtype=np.float32)
        d = _distance(pos, self.targets[np.asarray(task, dtype=np.int64)])
        if self.reward_type == "dense":
            return (-d).astype(np.float32)
        return (d <= self.distance_threshold).astype(np.float32) - np.float32(1.0)

    def task_terminated(self, task: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        """Whether ``step`` would have terminated under other tasks, for a batch of next observations.

        Args:
            task: (B,) int task indices.
            next_obs: ``{"observation": (B, 2)}`` raw positions after the step.

        Returns:
            (B,) bool: the row's target reached, with ``terminate_on_success``; all False without.
        """
        if not self.terminate_on_success:
            return np.zeros(len(task), dtype=bool)
        pos = np.asarray(next_obs["observation"], dtype=np.float32)
        return _distance(pos, self.targets[np.asarray(task, dtype=np.int64)]) <= self.distance_threshold
