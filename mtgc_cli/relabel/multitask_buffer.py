"""A multi-task replay buffer: per-task stratified sampling, goal relabeling and cross-task relabeling.

Built on SB3's :class:`HerReplayBuffer`, whose episode bookkeeping (``ep_start``, ``ep_length``,
overwriting whole episodes when full) it reuses. On top it records each transition's task and
changes how a minibatch is drawn (:meth:`MultiTaskReplayBuffer.plan_batch`):

1. *Stratified sampling*: each task with stored data gets an equal share of the minibatch, counted
   by the task each row trains *after* cross-task relabeling, but never more rows than the task has
   stored transitions (each drawn at most once; at most ``ceil(batch_size / stored)`` times while
   the whole buffer holds less than a batch). What a task cannot fill is shared equally among the
   others (the remainder of an equal split goes to randomly chosen tasks). ``uniform`` samples
   transitions regardless of task.
2. *Cross-task relabeling* (data sharing): up to ``task_fraction`` of each task's rows (of the
   batch, with ``uniform``) are transitions collected for another task, relabeled for this one.
   ``random`` takes them from the other tasks' data at random. ``best`` draws candidates from all
   the data and relabels a candidate for task j only when j's return on that trajectory is
   strictly higher than the return of the task it was collected for (ties between other tasks at
   random); a trajectory that its own task explains best keeps its task. Task j's return counts
   j's rewards, with the row's goal as task j sees it (the stored goal, or under HER the achieved
   goal under j of the chosen state), up to j's first termination. The task vector, the achieved
   goals, the reward and the termination are recomputed with task j's functions from the stored
   states. This is only valid when the tasks share dynamics, which the env declares
   (``shares_dynamics``) and :func:`mtgc_cli.relabel.replay_setup` checks.
3. *Goal relabeling* (HER ``final``/``future``/``episode``): the row's goal becomes the achieved
   goal, under the row's task, of a state from the same episode. Its state is chosen before the
   ``best`` task, so the task is scored with the goal it will be trained on.

The env (reached through the VecEnv, like HER's ``compute_reward``) provides, vectorised:
``task_reward(task (B,), next_obs dict) -> (B,)``, each row's reward under its task from the stored
next observation (and desired goal); ``task_terminated(task (B,), next_obs dict) -> (B,) bool``,
whether ``step`` would have terminated there (needed for cross-task relabeling; without it, goal
relabeling is refused as soon as the env terminates an episode); and, for goal envs with shared
dynamics, ``task_achieved_goal(task (B,), observation (B, D)) -> (B, G)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

from mtgc_cli.envs.task_encoding import nearest_task
from mtgc_cli.relabel.sampling import BatchPlan, choose_rows, draw, stratified_shares, trajectory_returns

GoalStrategy = Literal["none", "final", "future", "episode"]


class MultiTaskReplayBuffer(HerReplayBuffer):
    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        env: VecEnv,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_tasks: int = 2,
        task_key: str = "task",
        sampling: Literal["stratified", "uniform"] = "stratified",
        goal_strategy: GoalStrategy = "none",
        n_sampled_goal: int = 4,
        task_relabel: Literal["none", "random", "best"] = "none",
        task_fraction: float = 0.5,
        task_vectors: np.ndarray | None = None,
    ):
        """SB3's HER buffer arguments, then the multi-task ones (see the module doc).

        ``task_vectors`` (n_tasks, dim) is the task encoding the env appends under ``task_key``
        (``mtgc_cli.envs.task_encoding``; default: one-hots): a stored observation's task index is
        the row its vector equals, and a row relabeled for task j gets row j.
        """
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            env,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
            n_sampled_goal=n_sampled_goal,
            goal_selection_strategy="future" if goal_strategy == "none" else goal_strategy,
        )
        if task_key not in observation_space.spaces:
            raise ValueError(f"observation space has no '{task_key}' key for the task vector")
        self.n_tasks = n_tasks
        if task_vectors is None:
            task_vectors = np.eye(n_tasks, dtype=np.float32)
        self.task_vectors = np.asarray(task_vectors, dtype=np.float32)
        if self.task_vectors.shape != (n_tasks, *observation_space.spaces[task_key].shape):
            raise ValueError(
                f"task_vectors of shape {self.task_vectors.shape} do not fit {n_tasks} tasks and the "
                f"observation's '{task_key}' space {observation_space.spaces[task_key]}"
            )
        self.task_key = task_key
        self.sampling = sampling
        self.goal_strategy = goal_strategy
        self.her_ratio = 0.0 if goal_strategy == "none" else 1.0 - 1.0 / (n_sampled_goal + 1)
        self.task_relabel = task_relabel
        self.task_fraction = task_fraction if task_relabel != "none" else 0.0
        self.has_goals = (
            "achieved_goal" in observation_space.spaces and "desired_goal" in observation_space.spaces
        )
        # Task of each stored transition (-1: empty slot).
        self.tasks = np.full((self.buffer_size, self.n_envs), -1, dtype=np.int64)
        # For ``best`` relabeling, computed once when an episode ends (they depend only on stored
        # data), at every position of the episode: its return under every task with the stored
        # goal, and, for HER, with the goal that position's state achieves under each task.
        self.episode_returns = np.zeros((self.buffer_size, self.n_envs, n_tasks), dtype=np.float32)
        self.goal_returns = np.zeros((self.buffer_size, self.n_envs, n_tasks), dtype=np.float32)
        # Whether the env has task_terminated; looked up on first use (the env may be set later).
        self._env_has_task_terminated: bool | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # Buffers pickled before task encodings existed held one-hots.
        if "task_vectors" not in state:
            self.task_vectors = np.eye(self.n_tasks, dtype=np.float32)

    # ------------------------------------------------------------------------------------------
    # Storing

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        pos = self.pos
        self.tasks[pos] = nearest_task(obs[self.task_key].reshape(self.n_envs, -1), self.task_vectors)
        super().add(obs, next_obs, action, reward, done, infos)
        ended = np.flatnonzero(done)
        relabels = self.task_fraction > 0 or self.her_ratio > 0
        terminated = any(not infos[i].get("TimeLimit.truncated", False) for i in ended)
        # A termination belongs to the goal and task it happened under: a relabeled row that kept
        # it (or kept "not terminated") would teach the wrong value. Without the env's
        # task_terminated that cannot be recomputed, so refuse as soon as the env terminates.
        if relabels and terminated and not self._can_recompute_termination():
            raise RuntimeError(
                "the env terminated an episode, but it has no task_terminated(task, next_obs) to "
                "recompute termination for relabeled goals and tasks; add it to the env, or set "
                "relabel.strategy=none"
            )
        if self.task_relabel == "best":
            for env_idx in ended:
                self._store_episode_returns(pos, int(env_idx))

    def truncate_last_trajectory(self) -> None:
        """Close the episodes in progress (SB3; a resumed run starts new ones), with ``best``'s
        returns cached for them as for any episode that ends in ``add``."""
        open_envs = np.flatnonzero(self._current_ep_start != self.pos)
        super().truncate_last_trajectory()
        if self.task_relabel == "best":
            last = (self.pos - 1) % self.buffer_size
            for env_idx in open_envs:
                self._store_episode_returns(last, int(env_idx))

    def _store_episode_returns(self, last: int, env_idx: int) -> None:
        """Cache the returns of the episode ending at ``last`` under every task, at all its positions.

        ``goal_returns[k]`` is the episode's return under task j with task j's achieved goal of
        state k as the goal: a HER row whose goal comes from k is scored by a lookup, and the
        O(length^2) rewards are paid once per episode rather than at every gradient step.
        """
        start, length = self.ep_start[last, env_idx], self.ep_length[last, env_idx]
        positions = (start + np.arange(length)) % self.buffer_size
        envs = np.full(length, env_idx)
        self.episode_returns[positions, env_idx] = self._trajectory_returns(positions[:1], envs[:1], None)[0]
        if self.her_ratio == 0:
            return
        # In chunks of goal states, so that one env call handles a bounded number of rows.
        chunk = max(1, 200_000 // (self.n_tasks * length))
        for first in range(0, length, chunk):
            goal_positions = positions[first : first + chunk]
            n_goals = len(goal_positions)
            observation = self.next_observations["observation"][goal_positions, env_idx]
            tasks = np.repeat(np.arange(self.n_tasks), n_goals)
            goals = self._achieved_goal(tasks, np.tile(observation, (self.n_tasks, 1)))
            # Each goal position is also a position of the episode, which is all that
            # _trajectory_returns needs to find the episode.
            self.goal_returns[goal_positions, env_idx] = self._trajectory_returns(
                goal_positions, envs[:n_goals], goals.reshape(self.n_tasks, n_goals, -1)
            )

    # ------------------------------------------------------------------------------------------
    # Sampling

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> DictReplayBufferSamples:  # type: ignore[override]
        return self.build_batch(self.plan_batch(batch_size), env)

    def plan_batch(self, batch_size: int) -> BatchPlan:
        """Choose the transitions of a minibatch, each row's task and goal source (see the module doc)."""
        is_valid = self.ep_length > 0
        if not np.any(is_valid):
            raise RuntimeError(
                "Unable to sample before the end of the first episode: set learning_starts above the "
                "episode length"
            )
        valid = np.flatnonzero(is_valid)
        if self.sampling == "uniform":
            chosen = np.random.choice(valid, size=batch_size, replace=True)
            index, env = np.unravel_index(chosen, is_valid.shape)
            source = self.tasks[index, env]
            goal_from = self._goal_sources(index, env, choose_rows(batch_size, self.her_ratio))
            task = source.copy()
            shared = choose_rows(batch_size, self.task_fraction)
            if shared.any():
                task[shared] = self._new_tasks(index[shared], env[shared], source[shared], goal_from[shared])
            return BatchPlan(index, env, source, task, goal_from)
        return self._plan_stratified(batch_size, valid)

    def _plan_stratified(self, batch_size: int, valid: np.ndarray) -> BatchPlan:
        valid_tasks = self.tasks.reshape(-1)[valid]
        stored = np.bincount(valid_tasks, minlength=self.n_tasks)
        # Each transition at most once per batch, unless the buffer holds less than a batch.
        repeats = -(-batch_size // len(valid))
        quota = stratified_shares(batch_size, repeats * stored)
        # Rows relabeled from other tasks, at most what those tasks hold.
        others = repeats * (len(valid) - stored)
        wanted = np.minimum((self.task_fraction * quota).astype(np.int64), others)
        own = quota.copy()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []  # (flat index, task, goal_from)
        if self.task_relabel == "random":
            for task in np.flatnonzero(wanted):
                flat = draw(valid[valid_tasks != task], int(wanted[task]), repeats)
                parts.append((flat, np.full(len(flat), task), None))
                own[task] -= len(flat)
        elif self.task_relabel == "best" and wanted.sum() > 0:
            # Candidates from all the data; each goes to the task its trajectory scores best on,
            # and is used only where that is another task with room left in its share.
            pool = draw(valid, int(wanted.sum()), repeats)
            index, env = np.unravel_index(pool, self.tasks.shape)
            source = self.tasks[index, env]
            goal_from = self._goal_sources(index, env, choose_rows(len(pool), self.her_ratio))
            best = self._new_tasks(index, env, source, goal_from)
            for task in np.flatnonzero(wanted):
                rows = np.flatnonzero((best == task) & (source != task))[: wanted[task]]
                parts.append((pool[rows], np.full(len(rows), task), goal_from[rows]))
                own[task] -= len(rows)
        for task in np.flatnonzero(own):
            flat = draw(valid[valid_tasks == task], int(own[task]), repeats)
            parts.append((flat, np.full(len(flat), task), None))

        flat = np.concatenate([part[0] for part in parts])
        index, env = np.unravel_index(flat, self.tasks.shape)
        task = np.concatenate([part[1] for part in parts]).astype(np.int64)
        # Rows whose goal source is not chosen yet get HER goals at the configured ratio.
        undecided = np.concatenate([np.full(len(p[0]), p[2] is None) for p in parts])
        goal_from = np.concatenate([np.full(len(p[0]), -1) if p[2] is None else p[2] for p in parts])
        her = np.zeros(len(flat), dtype=bool)
        her[undecided] = choose_rows(int(undecided.sum()), self.her_ratio)
        goal_from[her] = self._goal_sources(index[her], env[her], np.ones(int(her.sum()), dtype=bool))
        return BatchPlan(index, env, self.tasks[index, env], task, goal_from)

    def build_batch(self, plan: BatchPlan, env: VecNormalize | None = None) -> DictReplayBufferSamples:
        """The minibatch of ``plan``: task vector, achieved and desired goals, reward and done relabeled."""
        index, env_index = plan.index, plan.env
        obs = {key: value[index, env_index].copy() for key, value in self.observations.items()}
        next_obs = {key: value[index, env_index].copy() for key, value in self.next_observations.items()}
        rewards = self.rewards[index, env_index].copy()
        dones = self.dones[index, env_index] * (1 - self.timeouts[index, env_index])

        moved = plan.task != plan.source_task
        if moved.any():
            vectors = self.task_vectors[plan.task[moved]]
            obs[self.task_key][moved] = vectors
            next_obs[self.task_key][moved] = vectors
            if self.has_goals:
                for batch in (obs, next_obs):
                    batch["achieved_goal"][moved] = self._achieved_goal(
                        plan.task[moved], batch["observation"][moved]
                    )
        goal_rows = plan.goal_from >= 0
        if goal_rows.any():
            sources, source_envs = plan.goal_from[goal_rows], env_index[goal_rows]
            source_obs = self.next_observations["observation"][sources, source_envs]
            goals = self._achieved_goal(plan.task[goal_rows], source_obs, sources, source_envs)
            obs["desired_goal"][goal_rows] = goals
            next_obs["desired_goal"][goal_rows] = goals
        relabeled = moved | goal_rows
        if relabeled.any():
            relabeled_next = {key: value[relabeled] for key, value in next_obs.items()}
            # r_t = r_task(s_{t+1}, g): the reward follows the next state, as in HER; so does the
            # termination, which belongs to the new task and goal, not to the stored ones.
            rewards[relabeled] = self._task_rewards(plan.task[relabeled], relabeled_next)
            dones[relabeled] = self._task_terminated(plan.task[relabeled], relabeled_next)

        obs_norm = self._normalize_obs(obs, env)
        next_norm = self._normalize_obs(next_obs, env)
        assert isinstance(obs_norm, dict) and isinstance(next_norm, dict)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(value) for key, value in obs_norm.items()},
            actions=self.to_torch(self.actions[index, env_index]),
            next_observations={key: self.to_torch(value) for key, value in next_norm.items()},
            dones=self.to_torch(dones).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(rewards.reshape(-1, 1), env)),
        )

    def _goal_sources(self, index: np.ndarray, env: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """HER: for each row in the mask ``rows``, a position of the same episode (-1 elsewhere)."""
        goal_from = np.full(len(index), -1, dtype=np.int64)
        if not rows.any():
            return goal_from
        ep_start = self.ep_start[index[rows], env[rows]]
        ep_length = self.ep_length[index[rows], env[rows]]
        if self.goal_selection_strategy.name == "FINAL":
            in_episode = ep_length - 1
        elif self.goal_selection_strategy.name == "FUTURE":
            current = (index[rows] - ep_start) % self.buffer_size
            in_episode = np.random.randint(current, ep_length)
        else:
            in_episode = np.random.randint(0, ep_length)
        goal_from[rows] = (in_episode + ep_start) % self.buffer_size
        return goal_from

    def _new_tasks(
        self, index: np.ndarray, env: np.ndarray, source: np.ndarray, goal_from: np.ndarray
    ) -> np.ndarray:
        """The task each row is relabeled to: another at random, or the best (maybe its own)."""
        if self.task_relabel == "random":
            shift = np.random.randint(1, self.n_tasks, size=len(source))
            return (source + shift) % self.n_tasks
        scores = self._task_scores(index, env, goal_from)
        is_best = scores == scores.max(axis=1, keepdims=True)
        # The argmax over all tasks: a row keeps its own task unless another scores strictly
        # higher, so a trajectory that succeeds at its own task is not given away by a tie-break.
        keep = is_best[np.arange(len(source)), source]
        # Among other tasks tied for best, one at random: the highest random score among them.
        other_best = np.argmax(np.where(is_best, np.random.random(scores.shape), -1.0), axis=1)
        return np.where(keep, source, other_best)

    def _task_scores(self, index: np.ndarray, env: np.ndarray, goal_from: np.ndarray) -> np.ndarray:
        """(R, n_tasks) return of each row's episode under every task, with the row's goal per task."""
        scores = np.empty((len(index), self.n_tasks), dtype=np.float32)
        stored = goal_from < 0
        scores[stored] = self.episode_returns[index[stored], env[stored]]
        # Under HER the goal depends on the task: task j is scored on the achieved goal, under j,
        # of the chosen state, which is the goal the row would be trained on as task j.
        scores[~stored] = self.goal_returns[goal_from[~stored], env[~stored]]
        return scores

    def _trajectory_returns(self, index: np.ndarray, env: np.ndarray, goals: np.ndarray | None) -> np.ndarray:
        """(R, n_tasks) return of each row's whole episode under every task (:func:`trajectory_returns`)."""
        episodes = (self.ep_start, self.ep_length, self.next_observations, self.task_key, self.buffer_size)
        return trajectory_returns(
            *episodes, self.n_tasks, index, env, goals, self._task_rewards, self._task_terminated
        )

    # ------------------------------------------------------------------------------------------
    # The env's task functions

    def _achieved_goal(
        self,
        tasks: np.ndarray,
        observation: np.ndarray,
        indices: np.ndarray | None = None,
        env_indices: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.task_relabel != "none":
            return np.asarray(self._env_call("task_achieved_goal", tasks, observation), dtype=np.float32)
        # Without cross-task relabeling each row keeps its own task, whose achieved goal is stored.
        assert indices is not None and env_indices is not None
        return self.next_observations["achieved_goal"][indices, env_indices]

    def _task_rewards(self, tasks: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        without_task = {key: value for key, value in next_obs.items() if key != self.task_key}
        return np.asarray(self._env_call("task_reward", tasks, without_task), dtype=np.float32)

    def _task_terminated(self, tasks: np.ndarray, next_obs: dict[str, np.ndarray]) -> np.ndarray:
        if not self._can_recompute_termination():
            # Only reached for envs that never terminated an episode: ``add`` refuses the first
            # termination of an env without task_terminated while relabeling is on.
            return np.zeros(len(tasks), dtype=bool)
        without_task = {key: value for key, value in next_obs.items() if key != self.task_key}
        return np.asarray(self._env_call("task_terminated", tasks, without_task), dtype=bool)

    def _can_recompute_termination(self) -> bool:
        if self._env_has_task_terminated is None:
            assert self.env is not None, "MultiTaskReplayBuffer needs its env (set_env) to relabel"
            self._env_has_task_terminated = bool(self.env.has_attr("task_terminated"))
        return self._env_has_task_terminated

    def _env_call(self, method: str, *args: Any) -> Any:
        assert self.env is not None, "MultiTaskReplayBuffer needs its env (set_env) to compute task rewards"
        # Like HER's compute_reward: all sub-envs share the task functions, so the first one serves.
        return self.env.env_method(method, *args, indices=[0])[0]
