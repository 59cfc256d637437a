"""Tests for mtgc_cli.envs.point_tasks.PointTasksEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from mtgc_cli.envs.point_tasks import PointTasksEnv


def _walk_to(env: PointTasksEnv, target: np.ndarray, max_steps: int = 20) -> tuple[float, dict]:
    """Step straight towards ``target`` until within the threshold; return the last reward and info."""
    reward, info = 0.0, {}
    for _ in range(max_steps):
        obs = env._pos
        direction = (target - obs) / env.step_size
        _, reward, _, _, info = env.step(np.clip(direction, -1, 1).astype(np.float32))
        if np.linalg.norm(env._pos - target) < 1e-6:
            break
    return reward, info


def test_spaces_and_protocol_attributes() -> None:
    env = PointTasksEnv()
    assert env.action_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.observation_space == spaces.Dict({"observation": spaces.Box(-1.0, 1.0, (2,), np.float32)})
    assert env.task_names == ("east", "north", "west", "south")
    assert PointTasksEnv(n_tasks=3).task_names == ("target-0", "target-1", "target-2")
    assert env.shares_dynamics is True
    np.testing.assert_allclose(env.targets, [[0.6, 0], [0, 0.6], [-0.6, 0], [0, -0.6]], atol=1e-6)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert np.all(np.abs(obs["observation"]) <= 0.1)
    assert isinstance(info["task"], int)


def test_gymnasium_env_checker() -> None:
    check_env(PointTasksEnv(), skip_render_check=True)


def test_determinism_with_seed() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = PointTasksEnv()
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        out = [obs["observation"], np.array([info["task"]])]
        for _ in range(10):
            obs, *_ = env.step(env.action_space.sample())
            out.append(obs["observation"])
        return out

    a, b, c = rollout(3), rollout(3), rollout(4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_reward_and_success_at_target(reward_type: str) -> None:
    env = PointTasksEnv(reward_type=reward_type)
    env.reset(seed=0, options={"task": 1})  # north
    _, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["is_success"] == 0.0 and not terminated and not truncated
    assert reward == (
        -1.0 if reward_type == "sparse" else pytest.approx(-np.linalg.norm(env._pos - [0, 0.6]))
    )
    reward, info = _walk_to(env, env.targets[1])
    assert info["is_success"] == 1.0 and info["task"] == 1
    assert reward == 0.0
    if reward_type == "sparse":
        assert np.copysign(1.0, reward) == 1.0  # 0.0, not -0.0
    # Staying at the target keeps the success; the episode does not terminate on success.
    _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert reward == 0.0 and info["is_success"] == 1.0 and not terminated


def test_task_selection() -> None:
    env = PointTasksEnv(n_tasks=3)
    seen = {env.reset(seed=None if i else 0)[1]["task"] for i in range(200)}
    assert seen == {0, 1, 2}
    assert env.reset(options={"task": 2})[1]["task"] == 2 and env.task == 2
    fixed = PointTasksEnv(task=1)
    assert {fixed.reset()[1]["task"] for _ in range(20)} == {1}
    # options override the fixed task
    assert fixed.reset(options={"task": 3})[1]["task"] == 3
    with pytest.raises(ValueError):
        fixed.reset(options={"task": 4})


def test_truncation_at_max_steps() -> None:
    env = PointTasksEnv(max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    env.reset()
    assert env.step(env.action_space.sample())[3] is False
    # Also correct under gymnasium's TimeLimit with a longer limit: the env truncates first.
    wrapped = gym.wrappers.TimeLimit(PointTasksEnv(max_episode_steps=3), max_episode_steps=10)
    wrapped.reset(seed=0)
    assert [wrapped.step(wrapped.action_space.sample())[3] for _ in range(3)] == [False, False, True]


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_task_reward_matches_step_rewards(reward_type: str) -> None:
    """Record a trajectory under each task; task_reward must equal that task's step rewards."""
    n_tasks = 4
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2)).astype(np.float32)
    # Aim east so the sparse rewards are not all -1.
    actions[:8] = [1.0, 0.0]
    positions, rewards = None, np.zeros((n_tasks, len(actions)), dtype=np.float32)
    for k in range(n_tasks):
        env = PointTasksEnv(reward_type=reward_type)
        env.reset(seed=5, options={"task": k})
        trajectory = []
        for i, a in enumerate(actions):
            obs, rewards[k, i], *_ = env.step(a)
            trajectory.append(obs["observation"])
        if positions is None:
            positions = np.stack(trajectory)
        # Same seed and actions, so the trajectory is the same whichever task is active.
        np.testing.assert_array_equal(np.stack(trajectory), positions)
    assert reward_type == "dense" or (rewards == 0).any()
    batch_task = np.repeat(np.arange(n_tasks), len(actions))
    batch_obs = {"observation": np.tile(positions, (n_tasks, 1))}
    relabeled = env.task_reward(batch_task, batch_obs)
    assert relabeled.dtype == np.float32 and relabeled.shape == (n_tasks * len(actions),)
    np.testing.assert_array_equal(relabeled, rewards.ravel())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_tasks": 1},
        {"radius": 0.0},
        {"radius": 1.5},
        {"distance_threshold": 0.0},
        {"step_size": -0.1},
        {"reward_type": "shaped"},
        {"task": 4},
        {"task": -1},
        {"max_episode_steps": 0},
    ],
)
def test_argument_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PointTasksEnv(**kwargs)


def test_terminate_on_success_and_task_terminated() -> None:
    """With terminate_on_success the episode ends at the task's target; task_terminated agrees per task."""
    env = PointTasksEnv(terminate_on_success=True)
    env.reset(seed=0, options={"task": 1})  # north
    flags = []
    for _ in range(10):
        direction = (env.targets[1] - env._pos) / env.step_size
        _, reward, terminated, _, info = env.step(np.clip(direction, -1, 1).astype(np.float32))
        flags.append(terminated)
        if terminated:
            break
    assert flags[-1] and not any(flags[:-1]) and reward == 0.0 and info["is_success"] == 1.0
    at_north = {"observation": np.stack([env._pos] * 4)}
    np.testing.assert_array_equal(env.task_terminated(np.arange(4), at_north), [False, True, False, False])
    # Without the option no task ever terminates, even at its target.
    assert not PointTasksEnv().task_terminated(np.arange(4), at_north).any()
