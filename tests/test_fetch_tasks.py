"""Tests for mtgc_cli.envs.fetch_tasks.FetchTasksEnv (one MuJoCo scene built per module)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mtgc_cli.envs.fetch_tasks import FETCH_TASKS, FetchTasksEnv

REACH, PUSH, LIFT = 0, 1, 2


@pytest.fixture(scope="module")
def env() -> FetchTasksEnv:
    env = FetchTasksEnv()
    yield env
    env.close()


def test_spaces_and_protocol_attributes(env: FetchTasksEnv) -> None:
    assert env.task_names == FETCH_TASKS == ("reach", "push", "lift")
    assert env.shares_dynamics is True
    assert env.observation_space["observation"].shape == (25,)
    assert env.observation_space["achieved_goal"].shape == (3,)
    assert env.observation_space["desired_goal"].shape == (3,)
    assert env.action_space.shape == (4,)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert info["task"] in (0, 1, 2)


def test_reset_options_choose_task(env: FetchTasksEnv) -> None:
    for task in (LIFT, REACH, PUSH):
        _, info = env.reset(options={"task": task})
        assert info["task"] == task == env.task
    with pytest.raises(ValueError):
        env.reset(options={"task": 3})


def test_goal_distributions(env: FetchTasksEnv) -> None:
    grip = env.initial_gripper_xpos
    table_z = env.height_offset  # the block's resting height
    goals = {
        t: np.stack([env.reset(options={"task": t})[0]["desired_goal"] for _ in range(15)]) for t in range(3)
    }
    for g in goals.values():
        assert np.all(np.abs(g[:, :2] - grip[:2]) <= 0.15 + 1e-9)
    # reach: around the gripper, above the table
    assert np.all(np.abs(goals[REACH][:, 2] - grip[2]) <= 0.15 + 1e-9)
    assert np.all(goals[REACH][:, 2] > table_z)
    # push: on the table
    np.testing.assert_allclose(goals[PUSH][:, 2], table_z)
    # lift: in the air
    assert np.all(goals[LIFT][:, 2] >= table_z + 0.1 - 1e-9)
    assert np.all(goals[LIFT][:, 2] <= table_z + 0.3 + 1e-9)


def test_achieved_goal_and_rewards_per_task(env: FetchTasksEnv) -> None:
    """achieved_goal is the task's; step reward equals task_reward / compute_reward on the obs."""
    rng = np.random.default_rng(0)
    tasks, observations, rewards = [], [], []
    next_obs: dict[str, list[np.ndarray]] = {"observation": [], "desired_goal": []}
    for task in (REACH, PUSH, LIFT):
        obs, _ = env.reset(seed=task, options={"task": task})
        observations.append(obs["observation"])
        tasks.append(task)
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            assert not terminated and not truncated and info["task"] == task
            assert info["is_success"] in (0.0, 1.0)
            assert reward == env.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
            tasks.append(task)
            observations.append(obs["observation"])
            next_obs["observation"].append(obs["observation"])
            next_obs["desired_goal"].append(obs["desired_goal"])
            rewards.append(reward)
        start = 0 if task == REACH else 3
        np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"][start : start + 3])
    task_arr = np.array(tasks)
    obs_arr = np.stack(observations)
    achieved = env.task_achieved_goal(task_arr, obs_arr)
    assert achieved.shape == (len(tasks), 3)
    np.testing.assert_array_equal(achieved[task_arr == REACH], obs_arr[task_arr == REACH, 0:3])
    np.testing.assert_array_equal(achieved[task_arr != REACH], obs_arr[task_arr != REACH, 3:6])
    step_tasks = np.repeat([REACH, PUSH, LIFT], 3)
    batch = {k: np.stack(v) for k, v in next_obs.items()}
    relabeled = env.task_reward(step_tasks, batch)
    assert relabeled.dtype == np.float32 and relabeled.shape == (9,)
    np.testing.assert_array_equal(relabeled, np.array(rewards, dtype=np.float32))


def test_success_and_zero_reward_at_goal(env: FetchTasksEnv) -> None:
    """Putting the goal on the achieved goal gives reward 0 and success (no -0.0)."""
    obs, _ = env.reset(seed=1, options={"task": REACH})
    env.goal = obs["achieved_goal"].copy()
    obs, reward, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert info["is_success"] == 1.0 and reward == 0.0 and np.copysign(1.0, reward) == 1.0


def test_works_under_time_limit_and_subset_and_errors() -> None:
    with pytest.raises(ValueError, match="valid tasks are"):
        FetchTasksEnv(tasks=("reach", "slide"))
    env = gym.wrappers.TimeLimit(FetchTasksEnv(tasks=("lift", "reach"), task=1), max_episode_steps=3)
    base = env.unwrapped
    assert base.task_names == ("lift", "reach")
    obs, info = env.reset(seed=0)
    assert info["task"] == 1
    np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"][0:3])
    truncated = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert truncated == [False, False, True]
    np.testing.assert_array_equal(
        base.task_achieved_goal(np.array([0, 1]), np.stack([obs["observation"]] * 2)),
        np.stack([obs["observation"][3:6], obs["observation"][0:3]]),
    )
    env.close()


def test_push_and_lift_rewards_tell_the_block_height_apart(env: FetchTasksEnv) -> None:
    """The block at its goal on the table succeeds at push only; lifted at its goal, at lift only."""
    obs, _ = env.reset(seed=2, options={"task": PUSH})
    rest = env.height_offset
    on_table, lifted = obs["observation"].copy(), obs["observation"].copy()
    on_table[3:6] = [1.3, 0.75, rest]
    lifted[3:6] = [1.3, 0.75, rest + 0.2]
    observation = np.stack([on_table, on_table, lifted, lifted])
    batch = {"observation": observation, "desired_goal": observation[:, 3:6]}  # each block at its goal
    rewards = env.task_reward(np.array([PUSH, LIFT, PUSH, LIFT]), batch)
    np.testing.assert_array_equal(rewards, [0.0, -1.0, -1.0, 0.0])
    # Dense: the block's height on the wrong side of 5 cm is added to the distance (0 here).
    dense = FetchTasksEnv(reward_type="dense")
    np.testing.assert_allclose(
        dense.task_reward(np.array([PUSH, LIFT, PUSH, LIFT]), batch), [0.0, -0.05, -0.15, 0.0], atol=1e-6
    )
    dense.close()


def test_height_rule_keeps_each_tasks_own_goal_rewards(env: FetchTasksEnv) -> None:
    """On goals from a task's own distribution the sparse reward is still -(d > threshold)."""
    rng = np.random.default_rng(0)
    for task in (PUSH, LIFT):
        goals = np.stack([env.reset(options={"task": task})[0]["desired_goal"] for _ in range(20)])
        goals = np.repeat(goals, 50, axis=0)
        observation = np.zeros((len(goals), 25))
        observation[:, 3:6] = goals + rng.uniform(-0.06, 0.06, size=goals.shape)
        rewards = env.task_reward(
            np.full(len(goals), task), {"observation": observation, "desired_goal": goals}
        )
        plain = (np.linalg.norm(observation[:, 3:6] - goals, axis=1) <= 0.05).astype(np.float32) - 1
        np.testing.assert_array_equal(rewards, plain)
        assert (rewards == 0).sum() > 100


def test_no_task_terminates(env: FetchTasksEnv) -> None:
    obs, _ = env.reset(seed=3)
    terminated = env.task_terminated(
        np.array([REACH, PUSH, LIFT]), {k: np.stack([v] * 3) for k, v in obs.items()}
    )
    assert terminated.dtype == bool and not terminated.any()
