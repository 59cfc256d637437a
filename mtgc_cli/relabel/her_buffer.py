"""SB3's ``HerReplayBuffer`` with the termination of relabeled rows recomputed for their new goal.

SB3 keeps each stored row's ``done`` when it replaces the goal. For an env that terminates on
success (bit flipping does) that is wrong both ways: a row that ended the episode by reaching
the *original* goal stays terminal under a goal it did not reach (its value is cut to the
reward), and a row that reaches the *new* goal does not terminate. Goal envs say when a goal
ends an episode through ``compute_terminated(achieved_goal, desired_goal, info)`` (gymnasium's
``GoalEnv`` API; Fetch's always returns False); this buffer calls it, vectorised, for every
relabeled row. An env without it can still be relabeled as long as it never terminates; the
first real termination stops the run with an explanation instead of training on wrong targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer


class GoalReplayBuffer(HerReplayBuffer):
    """``HerReplayBuffer`` whose virtual (relabeled) rows get ``done = compute_terminated(...)``."""

    _has_compute_terminated: bool | None = None

    def _env_terminates_by_goal(self) -> bool:
        if self._has_compute_terminated is None:
            assert self.env is not None
            self._has_compute_terminated = bool(self.env.has_attr("compute_terminated"))
        return self._has_compute_terminated

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any, infos: Any) -> None:
        terminated = np.asarray(done, dtype=bool) & ~np.array(
            [bool(info.get("TimeLimit.truncated", False)) for info in infos]
        )
        if terminated.any() and not self._env_terminates_by_goal():
            raise RuntimeError(
                "the env terminated an episode, but it has no compute_terminated(achieved_goal, "
                "desired_goal, info) to say whether a relabeled goal ends the episode too; add one "
                "to the env, or train with relabel.strategy none"
            )
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_virtual_samples(
        self, batch_indices: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        self._last_goals: np.ndarray | None = None
        samples = super()._get_virtual_samples(batch_indices, env_indices, env)
        if not self._env_terminates_by_goal():
            return samples  # the env never terminated (add() checks), so the stored dones are all 0
        goals = self._last_goals
        assert goals is not None and self.env is not None
        achieved = self.next_observations["achieved_goal"][batch_indices, env_indices]
        infos = [{} for _ in range(len(batch_indices))]
        terminated = self.env.env_method("compute_terminated", achieved, goals, infos, indices=[0])[0]
        dones = np.broadcast_to(np.asarray(terminated, dtype=np.float32), (len(batch_indices),))
        return samples._replace(dones=self.to_torch(dones.copy()).reshape(-1, 1))

    def _sample_goals(self, batch_indices: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        goals = super()._sample_goals(batch_indices, env_indices)
        # Kept raw (before normalisation) for compute_terminated in _get_virtual_samples.
        self._last_goals = goals
        return goals
