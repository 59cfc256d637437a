"""A multi-task replay buffer: per-task stratified sampling, goal relabeling and cross-task relabeling.

Built on SB3's :class:`HerReplayBuffer`, whose episode bookkeeping (``ep_start``, ``ep_length``,
overwriting whole episodes when full) it reuses. On top it records each transition's task and
changes how a minibatch is drawn:

1. *Stratified sampling*: each minibatch holds an equal share of every task that has data
   (the remainder of ``batch_size / n_tasks`` goes to randomly chosen tasks), which lowers the
   variance of the multi-task gradient; ``uniform`` samples transitions regardless of task.
2. *Cross-task relabeling* (data sharing): a fraction of the batch is stored again for another
   task j, chosen at random or as the task under which the whole trajectory, with its own goal,
   earns the highest return. The one-hot, the achieved goals and the reward are recomputed with
   task j's functions from the stored states. This is only valid when the tasks share dynamics,
   which the env declares (``shares_dynamics``) and :func:`mtgc_cli.relabel.replay_setup` checks.
3. *Goal relabeling* (HER ``final``/``future``/``episode``) on top, with the achieved goal taken
   under each row's (possibly new) task.

The env (reached through the VecEnv, like HER's ``compute_reward``) provides, vectorised:
``task_reward(task (B,), next_obs dict) -> (B,)``, each row's reward under its task from the stored
next observation (and desired goal), and, for goal envs with shared dynamics,
``task_achieved_goal(task (B,), observation (B, D)) -> (B, G)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

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
    ):
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
            raise ValueError(f"observation space has no '{task_key}' key for the task one-hot")
        self.n_tasks = n_tasks
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
        # Return of each transition's whole episode under every task, for ``best`` relabeling;
        # computed once when the episode ends, since it depends only on stored data.
        self.episode_returns = np.zeros((self.buffer_size, self.n_envs, n_tasks), dtype=np.float32)

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
        self.tasks[pos] = np.argmax(obs[self.task_key].reshape(self.n_envs, -1), axis=1)
        episode_starts = self._current_ep_start.copy()
        super().add(obs, next_obs, action, reward, done, infos)
        if self.task_relabel == "best":
            for env_idx in np.flatnonzero(done):
                self._store_episode_returns(int(episode_starts[env_idx]), pos, int(env_idx))

    def _store_episode_returns(self, start: int, last: int, env_idx: int) -> None:
        length = (last - start) % self.buffer_size + 1
        indices = (start + np.arange(length)) % self.buffer_size
        next_obs = {key: value[indices, env_idx] for key, value in self.next_observations.items()}
        returns = np.zeros(self.n_tasks, dtype=np.float32)
        for task in range(self.n_tasks):
            task_ids = np.full(length, task, dtype=np.int64)
            returns[task] = self._task_rewards(task_ids, next_obs).sum()
        self.episode_returns[indices, env_idx] = returns

    # ------------------------------------------------------------------------------------------
    # Sampling

    def sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(buffer position, env index) of ``batch_size`` transitions from finished episodes."""
        is_valid = self.ep_length > 0
        if not np.any(is_valid):
            raise RuntimeError(
                "Unable to sample before the end of the first episode: set learning_starts above the "
                "episode length"
            )
        valid = np.flatnonzero(is_valid)
        if self.sampling == "uniform":
            chosen = np.random.choice(valid, size=batch_size, replace=True)
        else:
            valid_tasks = self.tasks.reshape(-1)[valid]
            present = np.unique(valid_tasks)
            counts = np.full(len(present), batch_size // len(present))
            counts[np.random.choice(len(present), batch_size % len(present), replace=False)] += 1
            chosen = np.concatenate(
                [
                    np.random.choice(valid[valid_tasks == task], size=count, replace=True)
                    for task, count in zip(present, counts, strict=True)
                ]
            )
        return np.unravel_index(chosen, is_valid.shape)  # type: ignore[return-value]

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> DictReplayBufferSamples:  # type: ignore[override]
        batch_indices, env_indices = self.sample_indices(batch_size)
        obs = {key: value[batch_indices, env_indices].copy() for key, value in self.observations.items()}
        next_obs = {
            key: value[batch_indices, env_indices].copy() for key, value in self.next_observations.items()
        }
        rewards = self.rewards[batch_indices, env_indices].copy()
        tasks = self.tasks[batch_indices, env_indices].copy()

        task_rows = self._choose_rows(batch_size, self.task_fraction)
        goal_rows = self._choose_rows(batch_size, self.her_ratio)
        if task_rows.any():
            tasks[task_rows] = self._new_tasks(
                batch_indices[task_rows], env_indices[task_rows], tasks[task_rows]
            )
            one_hot = np.eye(self.n_tasks, dtype=np.float32)[tasks[task_rows]]
            obs[self.task_key][task_rows] = one_hot
            next_obs[self.task_key][task_rows] = one_hot
            if self.has_goals:
                for batch in (obs, next_obs):
                    batch["achieved_goal"][task_rows] = self._achieved_goal(
                        tasks[task_rows], batch["observation"][task_rows]
                    )
        if goal_rows.any():
            goals = self._goals_under_task(batch_indices[goal_rows], env_indices[goal_rows], tasks[goal_rows])
            obs["desired_goal"][goal_rows] = goals
            next_obs["desired_goal"][goal_rows] = goals
        relabeled = task_rows | goal_rows
        if relabeled.any():
            # r_t = r_task(s_{t+1}, g): the reward follows the next state, as in HER.
            rewards[relabeled] = self._task_rewards(
                tasks[relabeled], {key: value[relabeled] for key, value in next_obs.items()}
            )

        dones = self.dones[batch_indices, env_indices] * (1 - self.timeouts[batch_indices, env_indices])
        obs_norm = self._normalize_obs(obs, env)
        next_norm = self._normalize_obs(next_obs, env)
        assert isinstance(obs_norm, dict) and isinstance(next_norm, dict)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(value) for key, value in obs_norm.items()},
            actions=self.to_torch(self.actions[batch_indices, env_indices]),
            next_observations={key: self.to_torch(value) for key, value in next_norm.items()},
            dones=self.to_torch(dones).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(rewards.reshape(-1, 1), env)),
        )

    @staticmethod
    def _choose_rows(batch_size: int, fraction: float) -> np.ndarray:
        """A mask with exactly ``int(fraction * batch_size)`` rows set, at random positions."""
        mask = np.zeros(batch_size, dtype=bool)
        mask[np.random.permutation(batch_size)[: int(fraction * batch_size)]] = True
        return mask

    def _new_tasks(self, batch_indices: np.ndarray, env_indices: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """Task j != i for each row: uniformly at random, or the best for the row's trajectory."""
        if self.task_relabel == "random":
            shift = np.random.randint(1, self.n_tasks, size=len(tasks))
            return (tasks + shift) % self.n_tasks
        returns = self.episode_returns[batch_indices, env_indices].copy()
        returns[np.arange(len(tasks)), tasks] = -np.inf
        is_best = returns == returns.max(axis=1, keepdims=True)
        # Ties broken at random: the highest random score among the tied best tasks.
        return np.argmax(np.where(is_best, np.random.random(returns.shape), -1.0), axis=1)

    def _goals_under_task(
        self, batch_indices: np.ndarray, env_indices: np.ndarray, tasks: np.ndarray
    ) -> np.ndarray:
        """HER goals: the achieved goal, under each row's task, of a state from the same episode."""
        ep_start = self.ep_start[batch_indices, env_indices]
        ep_length = self.ep_length[batch_indices, env_indices]
        if self.goal_selection_strategy.name == "FINAL":
            in_episode = ep_length - 1
        elif self.goal_selection_strategy.name == "FUTURE":
            current = (batch_indices - ep_start) % self.buffer_size
            in_episode = np.random.randint(current, ep_length)
        else:
            in_episode = np.random.randint(0, ep_length)
        indices = (in_episode + ep_start) % self.buffer_size
        return self._achieved_goal(
            tasks, self.next_observations["observation"][indices, env_indices], indices, env_indices
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

    def _env_call(self, method: str, *args: Any) -> Any:
        assert self.env is not None, "MultiTaskReplayBuffer needs its env (set_env) to compute task rewards"
        # Like HER's compute_reward: all sub-envs share the task functions, so the first one serves.
        return self.env.env_method(method, *args, indices=[0])[0]
