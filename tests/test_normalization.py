"""Observation normalisation: the replay buffer keeps raw observations, episode ends included."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

from mtgc_cli import presets
from mtgc_cli.envs.factory import make_vec_env, normalize
from mtgc_cli.training import prepare


class TerminalRecorder(VecEnvWrapper):
    """Keeps the raw last observation of every episode, before VecNormalize sees it."""

    def __init__(self, venv: Any) -> None:
        super().__init__(venv)
        self.terminal: list[dict[str, np.ndarray]] = []

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for done, info in zip(dones, infos, strict=True):
            if done:
                self.terminal.append({k: np.array(v) for k, v in info["terminal_observation"].items()})
        return obs, rewards, dones, infos


def test_episode_ends_are_stored_raw_under_normalisation() -> None:
    # A tight clip makes the old behaviour (storing unnormalize(clip(normalize(obs)))) certain to show.
    config = presets.load(
        "fetch-tasks",
        sets=["env.normalize=true", "env.normalize_clip=0.5", "algo.learning_starts=100000",
              "relabel.task=none", "relabel.strategy=none"],
    )  # fmt: skip
    setup = prepare(config)
    recorder = TerminalRecorder(make_vec_env(config.env, seed=0))
    env = normalize(recorder, config.env, training=True)
    setup.model.set_env(env)
    setup.model.learn(total_timesteps=200)  # four 50-step episodes, random actions
    buffer = setup.model.replay_buffer
    assert len(recorder.terminal) == 4
    for episode, raw in enumerate(recorder.terminal):
        row = 50 * episode + 49
        for key in ("observation", "achieved_goal"):
            np.testing.assert_allclose(buffer.next_observations[key][row, 0], raw[key], atol=1e-5)
    setup.close()


def test_policy_input_is_still_clipped() -> None:
    config = presets.load("fetch-reach", sets=["env.normalize_clip=2.0"])
    setup = prepare(config)
    extractor = setup.model.policy.actor.features_extractor
    assert extractor.clip == 2.0
    import torch as th

    big = {k: th.full((1, *space.shape), 100.0) for k, space in setup.model.observation_space.spaces.items()}
    assert float(extractor(big).abs().max()) == 2.0
    setup.close()
