"""The multi-task replay buffer: stratified batches, cross-task and goal relabeling."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_vec_env
from mtgc_cli.errors import UsageError
from mtgc_cli.relabel import MultiTaskReplayBuffer, replay_setup


def fill(buffer: MultiTaskReplayBuffer, env: VecEnv, steps: int, seed: int = 0) -> None:
    """Random-action transitions from the real env, stored as SB3 stores them."""
    rng = np.random.default_rng(seed)
    env.seed(seed)
    obs = env.reset()
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(env.num_envs, *env.action_space.shape)).astype(np.float32)
        next_obs, rewards, dones, infos = env.step(actions)
        stored_next = {k: v.copy() for k, v in next_obs.items()}
        for i, done in enumerate(dones):
            if done:  # SB3 stores the true last observation, not the next episode's first
                for key in stored_next:
                    stored_next[key][i] = infos[i]["terminal_observation"][key]
        buffer.add(obs, stored_next, actions, rewards, dones, infos)
        obs = next_obs


def point_setup(task: str = "none", goal: str = "none", sampling: str = "stratified", fraction: float = 0.5):
    config = presets.load(
        "point-tasks",
        sets=[
            f"relabel.task={task}",
            f"relabel.strategy={goal}",
            f"relabel.sampling={sampling}",
            f"relabel.task_fraction={fraction}",
        ],
    )
    env = make_vec_env(config.env, seed=0)
    cls, kwargs = replay_setup(config, env)
    assert cls is MultiTaskReplayBuffer
    buffer = MultiTaskReplayBuffer(
        10_000, env.observation_space, env.action_space, env, device="cpu", **kwargs
    )
    return env, buffer


def test_stratified_batch_holds_equal_share_per_task() -> None:
    env, buffer = point_setup()
    fill(buffer, env, 30 * 40)
    for batch_size in (240, 256):
        np.random.seed(1)
        batch = buffer.sample(batch_size)
        counts = np.bincount(batch.observations["task"].argmax(dim=1).numpy(), minlength=4)
        assert counts.sum() == batch_size
        # 240 / 4 = 60 each; 256 / 4 = 64 each: exactly, whatever the tasks' shares of the data.
        assert counts.tolist() == [batch_size // 4] * 4


def test_uniform_sampling_follows_the_data() -> None:
    env, buffer = point_setup(sampling="uniform")
    fill(buffer, env, 30 * 40)
    stored = np.bincount(buffer.tasks[buffer.ep_length > 0], minlength=4) / np.sum(buffer.ep_length > 0)
    np.random.seed(2)
    batch = buffer.sample(4000)
    counts = np.bincount(batch.observations["task"].argmax(dim=1).numpy(), minlength=4) / 4000
    assert np.allclose(counts, stored, atol=0.03)


def test_random_task_relabel_recomputes_reward_for_the_new_task() -> None:
    env, buffer = point_setup(task="random", fraction=1.0)
    fill(buffer, env, 30 * 20)
    targets = env.get_attr("targets", indices=[0])[0]
    np.random.seed(3)
    batch_idx, env_idx = buffer.sample_indices(128)
    original = buffer.tasks[batch_idx, env_idx]
    np.random.seed(3)
    batch = buffer.sample(128)
    new = batch.observations["task"].argmax(dim=1).numpy()
    assert np.array_equal(new, batch.next_observations["task"].argmax(dim=1).numpy())
    assert (new != original).all()  # random picks among the *other* tasks
    pos = batch.next_observations["observation"].numpy()
    expected = -(np.linalg.norm(pos - targets[new], axis=1) > 0.1).astype(np.float32)
    assert np.array_equal(batch.rewards.numpy().ravel(), expected)


def test_best_task_relabels_a_pass_through_another_target_as_that_task() -> None:
    """An episode aimed at east that passes over north becomes a north episode (the shot meant as a pass)."""
    env, buffer = point_setup(task="best", fraction=1.0)
    targets = env.get_attr("targets", indices=[0])[0]
    east, north = 0, 1
    path = np.linspace([0.0, 0.0], targets[north], 10).tolist() + [targets[north].tolist()] * 5
    path += np.linspace(targets[north], [0.3, 0.3], 15).tolist()
    one_hot = np.eye(4, dtype=np.float32)[[east]]
    for t in range(len(path) - 1):
        obs = {"observation": np.array([path[t]], np.float32), "task": one_hot}
        nxt = {"observation": np.array([path[t + 1]], np.float32), "task": one_hot}
        done = np.array([t == len(path) - 2])
        buffer.add(obs, nxt, np.zeros((1, 2), np.float32), np.array([-1.0]), done, [{}])
    assert buffer.episode_returns[0, 0, north] > buffer.episode_returns[0, 0, east]
    batch = buffer.sample(64)
    assert (batch.observations["task"].argmax(dim=1).numpy() == north).all()
    pos = batch.next_observations["observation"].numpy()
    expected = -(np.linalg.norm(pos - targets[north], axis=1) > 0.1).astype(np.float32)
    assert np.array_equal(batch.rewards.numpy().ravel(), expected)
    assert (expected == 0).any()


def test_fetch_tasks_cross_task_and_goal_relabel_match_independent_rewards() -> None:
    config = presets.load("fetch-tasks", strategy="future+random-task", sets=["relabel.task_fraction=0.5"])
    env = make_vec_env(config.env, seed=0)
    cls, kwargs = replay_setup(config, env)
    buffer = cls(5000, env.observation_space, env.action_space, env, device="cpu", **kwargs)
    fill(buffer, env, 50 * 6)
    np.random.seed(4)
    batch = buffer.sample(256)
    task = batch.observations["task"].argmax(dim=1).numpy()
    names = np.array(config.env.task_labels)[task]
    obs = batch.next_observations["observation"].numpy()
    # reach: the gripper (obs 0:3) is the achieved goal; push and lift: the block (obs 3:6).
    achieved = np.where((names == "reach")[:, None], obs[:, 0:3], obs[:, 3:6])
    assert np.allclose(batch.next_observations["achieved_goal"].numpy(), achieved)
    goal = batch.next_observations["desired_goal"].numpy()
    # push needs the block on the table, lift needs it lifted (5 cm above its resting height).
    lifted = obs[:, 5] >= env.get_attr("height_offset", indices=[0])[0] + 0.05
    height_ok = np.where(names == "push", ~lifted, np.where(names == "lift", lifted, True))
    expected = (np.linalg.norm(achieved - goal, axis=1) <= 0.05) & height_ok
    assert np.array_equal(batch.rewards.numpy().ravel(), expected.astype(np.float32) - 1)
    assert expected.sum() > 10  # future goals make successes that the raw data lacks
    env.close()


def test_fetch_multi_refuses_cross_task_relabeling() -> None:
    config = presets.load("fetch-multi", strategy="future+random-task")
    env = make_vec_env(config.env, seed=0)
    with pytest.raises(UsageError, match="only valid when the tasks share dynamics"):
        replay_setup(config, env)
    # Goal relabeling within each task is still allowed.
    cls, _ = replay_setup(presets.load("fetch-multi"), env)
    assert cls is MultiTaskReplayBuffer
    env.close()


def test_goal_strategy_on_env_without_goals_is_refused() -> None:
    config = presets.load("point-tasks", strategy="future")
    env = make_vec_env(config.env, seed=0)
    with pytest.raises(UsageError, match="needs a goal env"):
        replay_setup(config, env)
