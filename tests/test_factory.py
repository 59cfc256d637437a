"""The env builder: task sampling per slot, normalisation keys, reward types, vectorisation."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_vec_env, normalize
from mtgc_cli.errors import UsageError


def test_per_slot_task_sampling_fixes_one_task_per_env() -> None:
    config = presets.load("point-tasks", sets=["env.n_envs=4", "env.task_sampling=per-slot"])
    env = make_vec_env(config.env, seed=0)
    for _ in range(3):
        obs = env.reset()
        assert obs["task"].argmax(axis=1).tolist() == [0, 1, 2, 3]


def test_uniform_task_sampling_covers_every_task() -> None:
    config = presets.load("point-tasks")
    env = make_vec_env(config.env, seed=0)
    seen = {int(env.reset()["task"].argmax()) for _ in range(40)}
    assert seen == {0, 1, 2, 3}


def test_normalisation_leaves_the_task_one_hot_alone() -> None:
    config = presets.load("point-tasks", sets=["env.normalize=true"])
    env = normalize(make_vec_env(config.env, seed=0), config.env, training=True)
    assert isinstance(env, VecNormalize)
    assert env.norm_obs_keys == ["observation"]
    obs = env.reset()
    assert set(np.unique(obs["task"])) <= {0.0, 1.0}


def test_dense_reward_is_passed_to_fetch_and_refused_where_unsupported() -> None:
    config = presets.load("fetch-reach", sets=["env.reward_type=dense", "env.normalize=false"])
    env = make_vec_env(config.env, seed=0)
    env.reset()
    _, reward, _, _ = env.step(np.zeros((1, 4), dtype=np.float32))
    assert -1.0 < reward[0] < 0.0  # -distance, not the sparse 0 / -1
    env.close()
    with pytest.raises(UsageError, match="has no reward_type argument"):
        make_vec_env(presets.load("bit-flip", sets=["env.reward_type=dense"]).env, seed=0)


def test_subprocess_envs_for_her() -> None:
    config = presets.load("bit-flip", sets=["env.n_envs=2", "env.vec_env=subproc", "env.kwargs.n_bits=4"])
    env = make_vec_env(config.env, seed=0)
    assert isinstance(env, SubprocVecEnv) and env.num_envs == 2
    # HER recomputes rewards through the first sub-env, across the process boundary.
    goal = np.zeros((3, 4))
    rewards = env.env_method("compute_reward", goal, goal, [{}] * 3, indices=[0])[0]
    assert np.array_equal(rewards, np.zeros(3))
    env.close()


def test_bit_flipping_draws_a_new_goal_each_episode_reproducibly() -> None:
    config = presets.load("bit-flip")
    env = make_vec_env(config.env, seed=0)
    goals = {tuple(env.reset()["desired_goal"][0]) for _ in range(10)}
    assert len(goals) == 10  # SB3's own BitFlippingEnv would give all ones every time
    again = make_vec_env(config.env, seed=0)
    first = make_vec_env(config.env, seed=0).reset()
    np.testing.assert_array_equal(again.reset()["desired_goal"], first["desired_goal"])
