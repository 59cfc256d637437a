"""Bit flipping with a new random goal every episode: the HER paper's setting.

SB3's ``BitFlippingEnv`` keeps the goal fixed at all ones, so it is a single-goal task that plain
DQN sometimes solves by luck. In the HER paper (Andrychowicz et al., 2017) both the initial
state and the goal are uniform over {0, 1}^n each episode, which is what makes the sparse
reward nearly invisible without relabeling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.envs import BitFlippingEnv


class BitFlippingGoalsEnv(BitFlippingEnv):
    """SB3's ``BitFlippingEnv`` whose ``reset`` also draws the goal (``random_goal=False`` keeps SB3's)."""

    def __init__(self, n_bits: int = 10, random_goal: bool = True, **kwargs: Any):
        super().__init__(n_bits=n_bits, **kwargs)
        self.random_goal = random_goal

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = super().reset(seed=seed, options=options)
        if self.random_goal:
            # The same seeded space as the state, so a seeded reset fixes both.
            self.desired_goal = np.asarray(self._obs_space.sample(), dtype=self.desired_goal.dtype)
            obs = self._get_obs()
        return obs, info

    def compute_terminated(self, achieved_goal: Any, desired_goal: Any, _info: Any) -> np.ndarray | bool:
        """Whether reaching ``achieved_goal`` ends the episode for ``desired_goal`` (vectorised).

        The env terminates on success; hindsight relabeling asks this for every new goal.
        """
        reward = self.compute_reward(achieved_goal, desired_goal, None)
        return np.asarray(reward) == 0
