"""Minibatches of demonstrations: stratified or uniform over tasks, with optional goal relabeling.

- ``stratified``: each task that has training data gets an equal share of every minibatch (the
  remainder of an equal split goes to randomly chosen tasks), rows drawn with replacement within
  the task. The gradient is then an equal-weight sum of the tasks' losses, ``sum_i L(theta, D_i)``,
  whatever the dataset's proportions, with less variance than sampling the task mixture.
- ``uniform``: rows drawn with replacement from all the data: a task's weight is its share of
  the data, so a task 10x rarer gets 10x fewer rows.

Goal relabeling (``final``, ``future``, ``episode``, as HER): a demonstration is a success for the
goals it reached, so a fraction of rows has its ``desired_goal`` replaced by the achieved goal
after a later step of the same episode (``future``), its last step (``final``) or any step
(``episode``). The fraction is ``n / (n + 1)`` with ``n = relabel.n_sampled_goal``, as in HER.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mtgc_cli.imitation.dataset import Demonstrations

Sampling = Literal["stratified", "uniform"]
GoalStrategy = Literal["none", "final", "future", "episode"]


def stratified_counts(batch_size: int, n_tasks: int, rng: np.random.Generator) -> np.ndarray:
    """(n_tasks,) rows per task summing to ``batch_size``; shares differ by at most one row."""
    counts = np.full(n_tasks, batch_size // n_tasks, dtype=np.int64)
    counts[rng.choice(n_tasks, batch_size % n_tasks, replace=False)] += 1
    return counts


class DemoSampler:
    """Draws minibatches ``(observations, actions)`` from the rows ``rows`` of ``demos``."""

    def __init__(
        self,
        demos: Demonstrations,
        rows: np.ndarray,
        rng: np.random.Generator,
        sampling: Sampling = "stratified",
        goal_strategy: GoalStrategy = "none",
        relabel_fraction: float = 0.0,
    ) -> None:
        if goal_strategy != "none" and (
            demos.next_achieved_goal is None or "desired_goal" not in demos.observations
        ):
            raise ValueError(f"goal relabeling ('{goal_strategy}') needs achieved_goal and desired_goal")
        self.demos = demos
        self.rows = np.asarray(rows, dtype=np.int64)
        self.rng = rng
        self.sampling = sampling
        self.goal_strategy = goal_strategy
        self.relabel_fraction = relabel_fraction if goal_strategy != "none" else 0.0
        tasks = demos.tasks[self.rows]
        # Rows of each task that has data; a task without training data takes no share.
        self.task_rows = [self.rows[tasks == task] for task in np.unique(tasks)]

    def indices(self, batch_size: int) -> np.ndarray:
        """(batch_size,) dataset rows of one minibatch, task by task for ``stratified``."""
        if self.sampling == "uniform" or len(self.task_rows) == 1:
            return self.rows[self.rng.integers(len(self.rows), size=batch_size)]
        counts = stratified_counts(batch_size, len(self.task_rows), self.rng)
        return np.concatenate(
            [
                rows[self.rng.integers(len(rows), size=n)]
                for rows, n in zip(self.task_rows, counts, strict=True)
            ]
        )

    def goals_for(self, index: np.ndarray) -> np.ndarray:
        """(B, G) the achieved goal of a later (``future``), last or any step of each row's episode."""
        assert self.demos.next_achieved_goal is not None
        start, end = self.demos.episode_start[index], self.demos.episode_end[index]
        if self.goal_strategy == "final":
            source = end - 1
        elif self.goal_strategy == "future":
            source = self.rng.integers(index, end)
        else:
            source = self.rng.integers(start, end)
        return self.demos.next_achieved_goal[source]

    def sample(self, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Observations (key -> (B, ...)) and actions (B, A) of one minibatch."""
        index = self.indices(batch_size)
        obs = {key: value[index] for key, value in self.demos.observations.items()}
        n_relabel = int(self.relabel_fraction * batch_size)
        if n_relabel:
            rows = self.rng.permutation(batch_size)[:n_relabel]
            obs["desired_goal"][rows] = self.goals_for(index[rows])
        return obs, self.demos.actions[index]


def split_episodes(
    demos: Demonstrations, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): ``fraction`` of each task's episodes held out.

    A task with a single episode keeps it for training; otherwise at least one episode of each
    task is held out (when ``fraction > 0``) and at least one is kept.
    """
    held_out: list[int] = []
    episode_tasks = demos.episode_tasks
    for task in np.unique(episode_tasks):
        episodes = np.flatnonzero(episode_tasks == task)
        if fraction <= 0 or len(episodes) < 2:
            continue
        n = min(max(1, round(fraction * len(episodes))), len(episodes) - 1)
        held_out.extend(rng.choice(episodes, n, replace=False).tolist())
    validation = np.isin(demos.episode, held_out)
    return np.flatnonzero(~validation), np.flatnonzero(validation)
