"""How a multi-task minibatch is drawn: the plan of its rows, equal task shares under caps, random
draws without repeats, and the returns that score a trajectory under every task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TaskFunction = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class BatchPlan:
    """Which stored transitions a minibatch holds and how each row is relabeled; every array (B,)."""

    index: np.ndarray
    """Buffer position of each row's transition."""
    env: np.ndarray
    """Env slot of each row's transition."""
    source_task: np.ndarray
    """The task the transition was collected under."""
    task: np.ndarray
    """The task the row trains; it differs from ``source_task`` where relabeled across tasks."""
    goal_from: np.ndarray
    """Buffer position whose achieved goal, under ``task``, is the row's goal; -1 keeps the stored goal."""


def draw(candidates: np.ndarray, size: int, repeats: int) -> np.ndarray:
    """``size`` entries of ``candidates`` in random order, each at most ``repeats`` times.

    Needs ``size <= repeats * len(candidates)``. Costs O(size) for a small draw from a large buffer
    (a full permutation would cost O(buffer) at every gradient step).
    """
    if size == 0:
        return candidates[:0]
    if repeats > 1 or 4 * size > len(candidates):
        return np.random.permutation(np.repeat(candidates, repeats))[:size]
    picked = np.unique(np.random.randint(len(candidates), size=size))
    while len(picked) < size:
        more = np.random.randint(len(candidates), size=size - len(picked))
        picked = np.unique(np.concatenate([picked, more]))
    return candidates[np.random.permutation(picked)]


def stratified_shares(batch_size: int, caps: np.ndarray) -> np.ndarray:
    """Rows per task: equal shares of ``batch_size``, each at most its cap, the rest to the others.

    Args:
        batch_size: rows to hand out; needs ``caps.sum() >= batch_size``.
        caps: (n_tasks,) the most rows each task may take (0 for a task without data).

    Returns:
        (n_tasks,) int counts summing to ``batch_size``; tasks that reach no cap differ by at most
        one row, the extra rows going to randomly chosen tasks.
    """
    counts = np.zeros(len(caps), dtype=np.int64)
    open_ = caps > 0
    left = batch_size
    while left > 0 and open_.any():
        share = left // int(open_.sum())
        capped = open_ & (caps <= share)
        if capped.any():
            # These tasks cannot take an equal share: give them all they have and split the rest
            # again among the others, whose equal share grows.
            counts[capped] = caps[capped]
            left -= int(caps[capped].sum())
            open_ &= ~capped
            continue
        counts[open_] = share
        extra = left - share * int(open_.sum())
        counts[np.random.choice(np.flatnonzero(open_), extra, replace=False)] += 1
        break
    return counts


def choose_rows(batch_size: int, fraction: float) -> np.ndarray:
    """A mask with exactly ``int(fraction * batch_size)`` rows set, at random positions."""
    mask = np.zeros(batch_size, dtype=bool)
    mask[np.random.permutation(batch_size)[: int(fraction * batch_size)]] = True
    return mask


def trajectory_returns(
    ep_start: np.ndarray,
    ep_length: np.ndarray,
    next_observations: dict[str, np.ndarray],
    task_key: str,
    buffer_size: int,
    n_tasks: int,
    index: np.ndarray,
    env: np.ndarray,
    goals: np.ndarray | None,
    task_rewards: TaskFunction,
    task_terminated: TaskFunction,
) -> np.ndarray:
    """(R, n_tasks) return of each row's whole episode under every task.

    Args:
        ep_start, ep_length: (buffer_size, n_envs) the buffer's episode bookkeeping (HER's).
        next_observations: the buffer's stored next observations, ``task_key`` left out.
        index, env: (R,) a position of each episode.
        goals: (n_tasks, R, G) the desired goal per task and row, or None for the stored goals.
        task_rewards, task_terminated: the env's task functions, ``(tasks (N,), next_obs) -> (N,)``.

    Task j's return sums j's rewards up to and including j's first termination: under j the
    episode would have ended there.
    """
    start, length = ep_start[index, env], ep_length[index, env]
    steps = np.arange(length.max())
    positions = (start[:, None] + steps) % buffer_size  # (R, L)
    in_episode = steps < length[:, None]
    n_rows, n_steps = positions.shape
    rows = n_tasks * n_rows * n_steps
    # Every task sees the same states: (n_tasks, R, L, ...) flattened to rows for one env call.
    next_obs = {
        key: np.broadcast_to(value[positions, env[:, None]], (n_tasks, n_rows, n_steps, *shape)).reshape(
            rows, *shape
        )
        for key, value in next_observations.items()
        if key != task_key
        for shape in [value.shape[2:]]
    }
    if goals is not None:
        goal_dim = goals.shape[-1]
        next_obs["desired_goal"] = np.broadcast_to(
            goals[:, :, None, :], (n_tasks, n_rows, n_steps, goal_dim)
        ).reshape(rows, goal_dim)
    tasks = np.repeat(np.arange(n_tasks), n_rows * n_steps)
    rewards = task_rewards(tasks, next_obs).reshape(n_tasks, n_rows, n_steps)
    terminated = task_terminated(tasks, next_obs).reshape(n_tasks, n_rows, n_steps)
    counted = in_episode & (np.cumsum(terminated, axis=2) - terminated == 0)
    return (rewards * counted).sum(axis=2).T
