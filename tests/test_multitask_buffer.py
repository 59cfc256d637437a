"""The multi-task replay buffer: stratified batches, cross-task and goal relabeling."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
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
        if isinstance(env.action_space, spaces.Discrete):
            actions = rng.integers(env.action_space.n, size=env.num_envs)
        else:
            actions = rng.uniform(-1, 1, size=(env.num_envs, *env.action_space.shape)).astype(np.float32)
        obs, _ = store_step(buffer, env, obs, actions)


def store_step(
    buffer: MultiTaskReplayBuffer, env: VecEnv, obs: dict[str, np.ndarray], actions: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Step the real env once and store the transition as SB3 does; the next observation and dones."""
    next_obs, rewards, dones, infos = env.step(actions)
    stored_next = {k: v.copy() for k, v in next_obs.items()}
    for i, done in enumerate(dones):
        if done:  # SB3 stores the true last observation, not the next episode's first
            for key in stored_next:
                stored_next[key][i] = infos[i]["terminal_observation"][key]
    buffer.add(obs, stored_next, actions, rewards, dones, infos)
    return next_obs, dones


def walk(buffer: MultiTaskReplayBuffer, env: VecEnv, waypoints: list[np.ndarray], episodes: int = 1) -> None:
    """Drive a one-slot point-tasks env through ``waypoints`` (then stay at the last) for whole episodes."""
    obs = env.reset()
    for _ in range(episodes):
        todo = list(waypoints)
        while True:
            target = todo[0]
            if len(todo) > 1 and np.allclose(obs["observation"][0], target, atol=1e-6):
                todo.pop(0)
                target = todo[0]
            action = np.clip((target - obs["observation"][0]) / 0.1, -1, 1).astype(np.float32)[None]
            obs, dones = store_step(buffer, env, obs, action)
            if dones[0]:
                break


def point_setup(
    task: str = "none",
    goal: str = "none",
    sampling: str = "stratified",
    fraction: float = 0.5,
    slot_tasks: list[int | None] | None = None,
    sets: list[str] | None = None,
):
    config = presets.load(
        "point-tasks",
        sets=[
            f"relabel.task={task}",
            f"relabel.strategy={goal}",
            f"relabel.sampling={sampling}",
            f"relabel.task_fraction={fraction}",
            *(sets or []),
        ],
    )
    env = make_vec_env(config.env, seed=0, slot_tasks=slot_tasks)
    cls, kwargs = replay_setup(config, env)
    assert cls is MultiTaskReplayBuffer
    buffer = MultiTaskReplayBuffer(
        10_000, env.observation_space, env.action_space, env, device="cpu", **kwargs
    )
    return env, buffer


def task_counts(batch) -> list[int]:
    return np.bincount(batch.observations["task"].argmax(dim=1).numpy(), minlength=4).tolist()


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
    plan = buffer.plan_batch(128)
    batch = buffer.build_batch(plan)
    new = batch.observations["task"].argmax(dim=1).numpy()
    assert np.array_equal(new, plan.task)
    assert np.array_equal(new, batch.next_observations["task"].argmax(dim=1).numpy())
    assert (new != plan.source_task).all()  # fraction 1: every row comes from another task's data
    pos = batch.next_observations["observation"].numpy()
    expected = -(np.linalg.norm(pos - targets[new], axis=1) > 0.1).astype(np.float32)
    assert np.array_equal(batch.rewards.numpy().ravel(), expected)


def test_best_task_relabels_a_pass_through_another_target_as_that_task() -> None:
    """An episode aimed at east that passes over north becomes a north episode (the shot meant as a pass)."""
    # Uniform sampling: stratified shares go only to tasks with data of their own, and north has none.
    env, buffer = point_setup(task="best", fraction=1.0, sampling="uniform")
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


# ---- Termination under relabeling ----------------------------------------------------------------


def test_relabeled_rows_recompute_termination_for_the_new_task() -> None:
    """East episodes pass over north and terminate at east; as north rows they end at north instead."""
    env, buffer = point_setup(
        task="random", fraction=1.0, sampling="uniform", slot_tasks=[0],
        sets=["env.kwargs={terminate_on_success: true}"],
    )  # fmt: skip
    targets = env.get_attr("targets", indices=[0])[0]
    walk(buffer, env, [targets[1], targets[0]], episodes=3)
    stored = buffer.dones[: buffer.pos, 0] * (1 - buffer.timeouts[: buffer.pos, 0])
    assert stored.sum() == 3  # each episode terminated, at the east target
    np.random.seed(5)
    batch = buffer.sample(256)
    task = batch.observations["task"].argmax(dim=1).numpy()
    assert (task != 0).all()
    pos = batch.next_observations["observation"].numpy()
    expected = (np.linalg.norm(pos - targets[task], axis=1) <= 0.1).astype(np.float32)
    assert np.array_equal(batch.dones.numpy().ravel(), expected)
    assert expected.sum() > 0  # rows that reach the north target end the north episode
    at_east = np.linalg.norm(pos - targets[0], axis=1) <= 0.1
    assert at_east.any() and (batch.dones.numpy().ravel()[at_east] == 0).all()


def test_goal_relabeling_refuses_an_env_that_terminates_without_task_terminated() -> None:
    """Bit flipping ends an episode on success; its tasks cannot recompute that for a new goal."""
    config = presets.load(
        "bit-flip",
        sets=[
            "env.tasks=[{id: mtgc/BitFlipping-v0, name: a}, {id: mtgc/BitFlipping-v0, name: b}]",
            "env.kwargs={n_bits: 2, continuous: false}",
        ],
    )
    env = make_vec_env(config.env, seed=0)
    cls, kwargs = replay_setup(config, env)
    buffer = cls(1000, env.observation_space, env.action_space, env, device="cpu", **kwargs)
    with pytest.raises(RuntimeError, match="no task_terminated"):
        fill(buffer, env, 200)


# ---- best: the argmax over all tasks ---------------------------------------------------------------


def test_best_task_keeps_the_own_task_unless_another_scores_higher() -> None:
    """A successful east episode, and one that reaches nothing (all tasks tie), both stay east."""
    env, buffer = point_setup(task="best", fraction=1.0, sampling="uniform", slot_tasks=[0])
    targets = env.get_attr("targets", indices=[0])[0]
    walk(buffer, env, [targets[0]], episodes=2)
    walk(buffer, env, [np.zeros(2, dtype=np.float32)], episodes=1)
    success, tie = buffer.episode_returns[0, 0], buffer.episode_returns[buffer.pos - 1, 0]
    assert success[0] > success[1:].max() and (tie == -30).all()
    np.random.seed(6)
    batch = buffer.sample(256)
    assert (batch.observations["task"].argmax(dim=1).numpy() == 0).all()


def test_best_task_on_fetch_scores_each_task_with_its_relabeled_goal() -> None:
    """A lift episode slides the block along the table and leaves it there: under HER it is a push.

    Push and lift share the achieved goal (the block), so only their height rules tell them apart;
    and only the relabeled goal (the block where it was left) makes push the best task: under the
    stored lift goal, in the air and never reached, every task scores the same.
    """
    config = presets.load("fetch-tasks", sets=["relabel.task_fraction=1.0", "relabel.sampling=uniform"])
    env = make_vec_env(config.env, seed=0)
    cls, kwargs = replay_setup(config, env)
    buffer = cls(1000, env.observation_space, env.action_space, env, device="cpu", **kwargs)
    reach, push, lift = 0, 1, 2
    first = env.reset()
    rest = env.get_attr("height_offset", indices=[0])[0]
    grip0, block0 = first["observation"][0, 0:3], first["observation"][0, 3:6]
    along_x, up = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    behind = block0 - 0.03 * along_x
    grippers, blocks = [], []
    for t in range(51):
        if t < 10:  # to the block
            grippers.append(grip0 + (behind - grip0) * t / 10)
            blocks.append(block0)
        elif t < 30:  # push it 20 cm along x
            grippers.append(behind + 0.01 * (t - 10) * along_x)
            blocks.append(block0 + 0.01 * (t - 10) * along_x)
        else:  # leave it and rise
            grippers.append(behind + 0.2 * along_x + 0.02 * (t - 30) * up)
            blocks.append(block0 + 0.2 * along_x)
    lift_goal = np.array([block0[0], block0[1] + 0.1, rest + 0.2])

    def obs_at(t: int) -> dict[str, np.ndarray]:
        vector = first["observation"][0].copy()
        vector[0:3], vector[3:6] = grippers[t], blocks[t]
        one_hot = np.eye(3, dtype=np.float32)[lift]
        return {"observation": vector[None], "achieved_goal": blocks[t][None], "desired_goal": lift_goal[None],
                "task": one_hot[None]}  # fmt: skip

    for t in range(50):
        info = {"TimeLimit.truncated": t == 49}
        buffer.add(
            obs_at(t),
            obs_at(t + 1),
            np.zeros((1, 4), np.float32),
            np.array([-1.0]),
            np.array([t == 49]),
            [info],
        )
    np.random.seed(7)
    batch = buffer.sample(512)
    task = batch.observations["task"].argmax(dim=1).numpy()
    gripper = batch.observations["observation"][:, 0:3].numpy()
    t = np.argmin(np.linalg.norm(gripper[:, None] - np.array(grippers)[None, :50], axis=2), axis=1)
    goal = batch.observations["desired_goal"].numpy()
    her = ~np.all(np.isclose(goal, lift_goal), axis=1)
    late = t >= 30  # the block is where it stays
    assert (late & her).sum() > 50 and (late & ~her).sum() > 5
    # HER rows: push wins (the block sits at its goal from step 25 on; reach's gripper moves away).
    assert (task[late & her] == push).all()
    np.testing.assert_allclose(goal[late & her], np.broadcast_to(blocks[-1], goal[late & her].shape))
    # Rows with the stored goal: every task fails throughout, so the trajectory keeps its own task.
    assert (task[late & ~her] == lift).all()
    assert reach not in task[late]
    env.close()


# ---- Stratified shares ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["random", "best"])
def test_stratified_shares_are_exact_after_cross_task_relabeling(task: str) -> None:
    env, buffer = point_setup(task=task, fraction=0.5)
    fill(buffer, env, 30 * 40)
    for seed in range(3):
        np.random.seed(seed)
        assert task_counts(buffer.sample(256)) == [64] * 4
    np.random.seed(0)
    plan = buffer.plan_batch(256)
    moved = (plan.task != plan.source_task).sum()
    # random: half of every share from other tasks; best: only rows where another task wins.
    assert moved == 128 if task == "random" else 0 < moved < 128


@pytest.mark.parametrize("task", ["none", "random"])
def test_stratified_share_is_capped_by_a_tasks_data(task: str) -> None:
    """A task with one 30-step episode gets 30 rows, each transition once; the other task the rest."""
    env, buffer = point_setup(task=task, slot_tasks=[0])
    fill(buffer, env, 30 * 40)
    north = make_vec_env(presets.load("point-tasks").env, seed=1, slot_tasks=[1])
    fill(buffer, north, 30, seed=1)
    np.random.seed(8)
    batch = buffer.sample(256)
    assert task_counts(batch) == [226, 30, 0, 0]
    rows = batch.observations["task"].argmax(dim=1).numpy() == 1
    transitions = np.concatenate(
        [batch.observations["observation"][rows].numpy(), batch.actions[rows].numpy()], axis=1
    )
    assert len(np.unique(transitions, axis=0)) == 30


def test_stratified_draws_repeat_transitions_only_while_the_buffer_holds_less_than_a_batch() -> None:
    env, buffer = point_setup()
    fill(buffer, env, 30 * 2)  # 60 transitions for a batch of 256: each at most ceil(256 / 60) = 5 times
    np.random.seed(9)
    plan = buffer.plan_batch(256)
    _, repeats = np.unique(plan.index, return_counts=True)
    assert len(plan.index) == 256 and repeats.max() <= 5
