"""Tests for mtgc_cli.envs.task_switch.TaskSwitchEnv."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mtgc_cli.envs.point_tasks import PointTasksEnv
from mtgc_cli.envs.task_switch import TaskSwitchEnv
from mtgc_cli.envs.wrappers import TaskOneHot


class GoalStub(gym.Env):
    """A 2-D goal env: the achieved goal moves by ``speed * action``; sparse reward within ``threshold``.

    Two instances with different ``speed`` have different dynamics; different ``threshold``
    gives different reward functions, so the test can tell which sub-env computed a reward.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, speed: float = 0.1, threshold: float = 0.1, goal_dim: int = 2) -> None:
        self.speed, self.threshold = speed, threshold
        box = spaces.Box(-np.inf, np.inf, shape=(goal_dim,), dtype=np.float64)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(goal_dim,), dtype=np.float32)
        self.render_mode = "rgb_array"
        self.closed = False
        self.last_options: dict | None = None

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": self.pos.copy(),
            "achieved_goal": self.pos.copy(),
            "desired_goal": self.goal.copy(),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.last_options = options
        self.pos = self.np_random.uniform(-1, 1, size=self.action_space.shape)
        self.goal = self.np_random.uniform(-1, 1, size=self.action_space.shape)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self.pos = self.pos + self.speed * np.asarray(action)
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        return obs, reward, False, False, {"is_success": np.float32(reward == 0.0)}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        d = np.linalg.norm(achieved_goal - desired_goal, axis=-1)
        return -(d > self.threshold).astype(np.float32)

    def render(self) -> np.ndarray:
        return np.full((2, 2, 3), int(self.speed * 100), dtype=np.uint8)

    def close(self) -> None:
        self.closed = True


def _two_stubs(task: int | None = None) -> TaskSwitchEnv:
    return TaskSwitchEnv(
        [lambda: GoalStub(speed=0.1, threshold=0.5), lambda: gym.wrappers.TimeLimit(GoalStub(speed=0.3), 4)],
        ["slow", "fast"],
        task=task,
    )


def test_switching_info_and_delegation() -> None:
    env = _two_stubs()
    assert env.task_names == ("slow", "fast") and env.shares_dynamics is False
    assert not hasattr(env, "task_achieved_goal")
    assert env.observation_space == env.envs[0].observation_space and env.render_mode == "rgb_array"
    seen = set()
    for i in range(30):
        obs, info = env.reset(seed=0 if i == 0 else None)
        assert info["task"] == env.task
        seen.add(env.task)
    assert seen == {0, 1}

    obs, info = env.reset(options={"task": 1, "other": 7})
    assert info["task"] == 1
    # "task" is ours; the other options reach the sub-env.
    assert env.envs[1].unwrapped.last_options == {"other": 7}
    start = obs["achieved_goal"]
    obs, reward, _, _, info = env.step(np.ones(2, dtype=np.float32))
    np.testing.assert_allclose(obs["achieved_goal"], start + 0.3, atol=1e-6)  # the fast sub-env's dynamics
    assert info["task"] == 1 and isinstance(info["is_success"], float) and isinstance(reward, float)
    assert env.render()[0, 0, 0] == 30
    # The sub-env's own TimeLimit still truncates.
    assert [env.step(np.zeros(2, dtype=np.float32))[3] for _ in range(3)] == [False, False, True]

    env.close()
    assert all(e.unwrapped.closed for e in env.envs)


def test_fixed_task_and_seeding() -> None:
    env = _two_stubs(task=0)
    assert {env.reset()[1]["task"] for _ in range(5)} == {0}

    def first_obs(seed: int) -> list[np.ndarray]:
        e = _two_stubs()
        return [e.reset(seed=seed)[0]["desired_goal"]] + [e.reset()[0]["desired_goal"] for _ in range(4)]

    for a, b in zip(first_obs(1), first_obs(1), strict=True):
        np.testing.assert_array_equal(a, b)


def test_works_with_task_one_hot() -> None:
    env = TaskOneHot(_two_stubs(), n_tasks=2)
    obs, _ = env.reset(options={"task": 1})
    np.testing.assert_array_equal(obs["task"], [0.0, 1.0])


def test_mismatched_spaces_raise() -> None:
    with pytest.raises(ValueError, match="'wide' has observation space"):
        TaskSwitchEnv([GoalStub, lambda: GoalStub(goal_dim=3)], ["base", "wide"])
    with pytest.raises(ValueError, match="'point' has"):
        TaskSwitchEnv([GoalStub, PointTasksEnv], ["goal", "point"])
    with pytest.raises(ValueError, match="env_fns"):
        TaskSwitchEnv([GoalStub], ["a", "b"])


def test_compute_reward_and_task_reward_per_row() -> None:
    env = _two_stubs()
    # distance 0.3: within "slow"'s 0.5 threshold, outside "fast"'s 0.1
    achieved = np.zeros((5, 2))
    desired = np.tile([0.3, 0.0], (5, 1))
    task = np.array([0, 1, 1, 0, 1])
    rewards = env.task_reward(
        task, {"achieved_goal": achieved, "desired_goal": desired, "observation": achieved}
    )
    assert rewards.dtype == np.float32
    np.testing.assert_array_equal(rewards, [0, -1, -1, 0, -1])
    env.reset(options={"task": 0})
    np.testing.assert_array_equal(env.compute_reward(achieved, desired, [{}] * 5), np.zeros(5))
    env.reset(options={"task": 1})
    np.testing.assert_array_equal(env.compute_reward(achieved, desired, [{}] * 5), -np.ones(5))


def test_compute_reward_missing_raises() -> None:
    env = TaskSwitchEnv([lambda: PointTasksEnv(task=0), lambda: PointTasksEnv(task=1)], ["east", "north"])
    _, info = env.reset(options={"task": 1})
    assert info["task"] == 1 and env.envs[1].task == 1
    with pytest.raises(AttributeError, match="has no compute_reward"):
        env.compute_reward(np.zeros(2), np.zeros(2), {})


def test_real_fetch_push_and_slide() -> None:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = TaskSwitchEnv(
        [lambda: gym.make("FetchPush-v4"), lambda: gym.make("FetchSlide-v4")], ["push", "slide"]
    )
    rewards, achieved, desired, tasks = [], [], [], []
    for task in (0, 1):
        obs, info = env.reset(seed=task, options={"task": task})
        assert info["task"] == task
        for _ in range(2):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            assert info["task"] == task and info["is_success"] in (0.0, 1.0)
            rewards.append(reward)
            tasks.append(task)
            achieved.append(obs["achieved_goal"])
            desired.append(obs["desired_goal"])
    # Put one row on its goal so the batch mixes 0 and -1.
    achieved[1] = desired[1].copy()
    rewards[1] = 0.0
    relabeled = env.task_reward(
        np.array(tasks), {"achieved_goal": np.stack(achieved), "desired_goal": np.stack(desired)}
    )
    np.testing.assert_array_equal(relabeled, np.array(rewards, dtype=np.float32))
    env.close()
