"""Observation and info wrappers that adapt envs to mtgc's multi-task protocol.

Every wrapper here builds its new observation space once in ``__init__`` and subclasses
``gym.utils.RecordConstructorArgs``, so it is recorded in ``env.spec`` and ``gym.make(env.spec)``
rebuilds the same stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "SUCCESS_KEYS",
    "ActionRepeat",
    "DictObservation",
    "GoalObservation",
    "MissingSuccessKey",
    "SuccessInfo",
    "TaskObservation",
    "TaskOneHot",
]


class TaskObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append the current task's vector ``z_i`` (a one-hot, a sentence embedding) to the observation.

    The task index is read from ``info["task"]`` on every ``reset`` and ``step``, so the wrapped
    env decides which task is active and this wrapper only makes it visible to the policy.

    - ``Dict`` observation space: a key ``key`` is added with ``Box(low, high, (dim,), float32)``.
    - 1-D ``Box`` observation space: the vector is concatenated at the end; the result is a float32
      ``Box`` of shape ``(obs_dim + dim,)`` with bounds extended by ``low`` and ``high``.
    """

    def __init__(
        self,
        env: gym.Env,
        vectors: np.ndarray,
        key: str = "task",
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        """Wrap ``env``.

        Args:
            env: an env whose ``info`` carries an int ``"task"`` in ``[0, len(vectors))``.
            vectors: (n_tasks, dim) row i is appended for task i (mtgc_cli.envs.task_encoding).
            key: the Dict key to add (ignored for Box observation spaces).
            bounds: the space's bounds for every entry; they belong to the kind of encoding, not
                to the values, so that envs with reworded tasks have the same space.

        Raises:
            ValueError: no rows, ``vectors`` not 2-D, or ``key`` already in a Dict observation space.
            TypeError: the observation space is neither a Dict nor a 1-D Box.
        """
        gym.utils.RecordConstructorArgs.__init__(self, vectors=vectors, key=key, bounds=bounds)
        gym.ObservationWrapper.__init__(self, env)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) < 1:
            raise ValueError(f"vectors must be (n_tasks >= 1, dim), got shape {vectors.shape}")
        self.n_tasks, dim = vectors.shape
        self.key = key
        self._task: int | None = None
        # Read by the replay buffer (through the VecEnv), which keys transitions by task index.
        self.task_vectors = vectors

        low, high = bounds
        task_space = spaces.Box(low, high, shape=(dim,), dtype=np.float32)
        obs_space = env.observation_space
        if isinstance(obs_space, spaces.Dict):
            if key in obs_space.spaces:
                raise ValueError(f"The key {key!r} already exists in the observation space {obs_space}.")
            self.observation_space = spaces.Dict(
                {**obs_space.spaces, key: task_space}, sort_keys=obs_space.sort_keys
            )
            self._is_dict = True
        elif isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1:
            self.observation_space = spaces.Box(
                low=np.concatenate([obs_space.low.astype(np.float32), np.full(dim, low, np.float32)]),
                high=np.concatenate([obs_space.high.astype(np.float32), np.full(dim, high, np.float32)]),
                dtype=np.float32,
            )
            self._is_dict = False
        else:
            raise TypeError(
                f"{type(self).__name__} supports a Dict or a 1-D Box observation space, got {obs_space}; "
                "wrap a Box env in DictObservation or flatten it first."
            )

    def _read_task(self, info: dict[str, Any]) -> int:
        """Return the validated task index from ``info``."""
        if "task" not in info:
            raise KeyError(
                f"{type(self).__name__} needs info['task'] from the wrapped env on every reset and step, "
                f"but the info has only the keys {sorted(info)}."
            )
        task = int(info["task"])
        if not 0 <= task < self.n_tasks:
            raise ValueError(
                f"info['task'] = {task} is outside [0, {self.n_tasks}) for this {type(self).__name__}."
            )
        return task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped env and append the task it chose."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._task = self._read_task(info)
        return self.observation(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env and append the current task (read again: an env may switch tasks)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._task = self._read_task(info)
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: Any) -> Any:
        """Add the task's (dim,) float32 vector to a dict observation, or concatenate it to a vector."""
        if self._task is None:
            raise RuntimeError(f"{type(self).__name__}.observation() called before reset().")
        z = self.task_vectors[self._task].copy()
        if self._is_dict:
            return {**observation, self.key: z}
        return np.concatenate([np.asarray(observation, dtype=np.float32), z])


class TaskOneHot(TaskObservation):
    """:class:`TaskObservation` with the one-hot encoding: ``Box(0, 1, (n_tasks,))``."""

    def __init__(self, env: gym.Env, n_tasks: int, key: str = "task") -> None:
        """Wrap ``env``; ``n_tasks`` is the one-hot's length.

        Raises:
            ValueError: ``n_tasks < 1``, or ``key`` is already in a Dict observation space.
            TypeError: the observation space is neither a Dict nor a 1-D Box.
        """
        # Recorded first (the first record is kept): env.spec rebuilds this class from its own arguments.
        gym.utils.RecordConstructorArgs.__init__(self, n_tasks=n_tasks, key=key)
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        super().__init__(env, np.eye(n_tasks, dtype=np.float32), key=key)


class GoalObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Flatten chosen keys of a Dict observation into one float32 vector.

    This lets a policy without a Dict feature extractor be goal-conditioned, e.g. on
    ``("observation", "desired_goal")``. The keys are concatenated in the order given, each
    raveled. The wrapped env's ``compute_reward`` stays reachable through
    ``env.get_wrapper_attr("compute_reward")``.
    """

    def __init__(self, env: gym.Env, keys: Sequence[str] = ("observation", "desired_goal")) -> None:
        """Wrap ``env``.

        Args:
            env: an env with a Dict observation space whose ``keys`` are Box spaces.
            keys: the keys to concatenate, in order.

        Raises:
            ValueError: the space is not a Dict, ``keys`` is empty, a key is missing or not a Box.
        """
        keys = tuple(keys)
        gym.utils.RecordConstructorArgs.__init__(self, keys=keys)
        gym.ObservationWrapper.__init__(self, env)
        obs_space = env.observation_space
        if not isinstance(obs_space, spaces.Dict):
            raise ValueError(f"GoalObservation needs a Dict observation space, got {obs_space}.")
        if not keys:
            raise ValueError("GoalObservation needs at least one key.")
        lows, highs = [], []
        for k in keys:
            if k not in obs_space.spaces:
                raise ValueError(
                    f"Key {k!r} is not in the observation space; available keys: {list(obs_space.spaces)}."
                )
            sub = obs_space.spaces[k]
            if not isinstance(sub, spaces.Box):
                raise ValueError(f"GoalObservation can only flatten Box spaces; key {k!r} is {sub}.")
            lows.append(sub.low.astype(np.float32).ravel())
            highs.append(sub.high.astype(np.float32).ravel())
        self.keys = keys
        self.observation_space = spaces.Box(np.concatenate(lows), np.concatenate(highs), dtype=np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """Return the (sum of key sizes,) float32 concatenation of ``observation[k]`` for k in keys."""
        return np.concatenate([np.asarray(observation[k], dtype=np.float32).ravel() for k in self.keys])


class DictObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Put a Box observation under a single Dict key, so that keys (e.g. the task) can be added."""

    def __init__(self, env: gym.Env, key: str = "observation") -> None:
        """Wrap ``env``.

        Raises:
            TypeError: the observation space is not a Box.
        """
        gym.utils.RecordConstructorArgs.__init__(self, key=key)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.observation_space, spaces.Box):
            raise TypeError(f"DictObservation needs a Box observation space, got {env.observation_space}.")
        self.key = key
        self.observation_space = spaces.Dict({key: env.observation_space})

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        """Return ``{key: observation}``."""
        return {self.key: observation}


# The info keys under which envs report success, in the order they are looked for.
SUCCESS_KEYS = ("is_success", "success")


class MissingSuccessKey(KeyError):
    """The env's step info has no success key; ``keys`` are the ones it does report."""

    def __init__(self, wanted: Sequence[str], keys: Sequence[str]) -> None:
        super().__init__(f"no success key {' or '.join(map(repr, wanted))} in the step info")
        self.wanted = tuple(wanted)
        self.keys = tuple(sorted(keys))


class SuccessInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Report success as ``info["is_success"]`` (0.0 or 1.0), read from the env's own key.

    SB3's Monitor, HER and mtgc's evaluation read ``is_success``; Meta-World and the
    gymnasium-robotics mazes report ``success``. With ``key=None`` the key is detected on the
    first step (``SUCCESS_KEYS``, in order); an env that reports none raises
    :class:`MissingSuccessKey` rather than counting as a silent failure.

    With ``latch=True`` an episode counts as a success from the first step that reported one
    (Meta-World's evaluation measure: success at any step), so the value at the episode's end,
    which is what evaluation reads, says whether success was ever reached.
    """

    def __init__(self, env: gym.Env, key: str | None = None, latch: bool = False) -> None:
        """Wrap ``env``; ``key`` is the info key the env reports success under (None: detect)."""
        gym.utils.RecordConstructorArgs.__init__(self, key=key, latch=latch)
        gym.Wrapper.__init__(self, env)
        self.key = key
        self.latch = latch
        self._reached = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._reached = False
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env and set ``info["is_success"]``.

        Raises:
            MissingSuccessKey: the step info has no success key.
        """
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.key is None:
            self.key = next((k for k in SUCCESS_KEYS if k in info), None)
            if self.key is None:
                raise MissingSuccessKey(SUCCESS_KEYS, list(info))
        if self.key not in info:
            raise MissingSuccessKey([self.key], list(info))
        success = float(info[self.key]) > 0
        self._reached = self._reached or success
        # Copy so that a dict the inner env keeps around is not changed behind its back.
        info = {**info, "is_success": float(self._reached if self.latch else success)}
        return obs, reward, terminated, truncated, info


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Apply each action for ``repeat`` env steps; one decision of the agent is ``repeat`` env steps.

    The observation and info are those of the last inner step. The decision's reward is, with
    ``reward="sum"``, the sum of its inner steps' rewards (every reward the env gave counts, as
    in the action-repeat of DQN's Atari and of DrQ), and with ``reward="last"`` the last inner
    step's: for a goal-conditioned sparse reward that is ``compute_reward(achieved_goal,
    desired_goal)`` of the state reached, which is exactly what hindsight relabeling recomputes
    from the stored observation, so the stored and the relabeled rewards agree (the factory picks
    it there). A decision ends early when the inner env terminates or truncates, so episode ends
    are never overshot. ``info["env_steps"]`` says how many inner steps the decision took.
    Success is read inside the repeat (:class:`SuccessInfo` wraps the inner env), so a success
    reached in the middle of a decision is seen by ``success_at: any``.
    """

    REWARDS = ("sum", "last")

    def __init__(self, env: gym.Env, repeat: int, reward: str = "sum") -> None:
        """Wrap ``env``.

        Raises:
            ValueError: ``repeat < 1``, or ``reward`` not in :attr:`REWARDS`.
        """
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat, reward=reward)
        gym.Wrapper.__init__(self, env)
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if reward not in self.REWARDS:
            raise ValueError(f"reward must be one of {self.REWARDS}, got {reward!r}")
        self.repeat = repeat
        self.reward = reward

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the inner env up to ``repeat`` times with ``action``; the last step's results, and
        the summed or last reward."""
        steps = 0
        total = 0.0
        while True:
            obs, reward, terminated, truncated, info = self.env.step(action)
            steps += 1
            total += float(reward)
            if terminated or truncated or steps == self.repeat:
                break
        info = {**info, "env_steps": steps}
        return obs, (total if self.reward == "sum" else reward), terminated, truncated, info


class GoalDistanceInfo(gym.Wrapper):
    """Puts ``info["goal_distance"]`` = ||achieved_goal - desired_goal|| from the raw observation.

    Evaluation reads it at an episode's end; computed here, below any normalisation, so the
    distance is in the env's own units.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if isinstance(obs, dict) and "achieved_goal" in obs and "desired_goal" in obs:
            diff = np.asarray(obs["achieved_goal"], dtype=np.float64) - np.asarray(obs["desired_goal"])
            info["goal_distance"] = float(np.linalg.norm(diff))
        return obs, reward, terminated, truncated, info
