"""Algorithm names -> stable-baselines3 / sb3-contrib classes, and their keyword arguments."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import numpy as np
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import DDPG, DQN, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from mtgc_cli.errors import UsageError
from mtgc_cli.presets import AlgoConfig

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "tqc": TQC,
    "dqn": DQN,
}

# Arguments mtgc sets itself from other sections; a preset setting them would be silently overridden.
MANAGED = {
    "env": "built from the env section",
    "policy": "chosen from the observation space",
    "replay_buffer_class": "chosen from the relabel section",
    "replay_buffer_kwargs": "built from the relabel section",
    "seed": "set train.seed",
    "tensorboard_log": "written to the run folder",
    "verbose": "mtgc shows its own progress",
    "device": "mtgc runs on the CPU",
    "action_noise": "set algo.noise_std",
    "_init_setup_model": "internal",
}


def algo_class(name: str) -> type[OffPolicyAlgorithm]:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise UsageError(f"unknown algorithm '{name}'; valid: {', '.join(ALGORITHMS)}") from None


def _parameters(cls: type[BaseAlgorithm]) -> dict[str, inspect.Parameter]:
    return {
        name: param
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


def check_algo_kwargs(algo: AlgoConfig, source: str = "preset") -> None:
    """Reject kwargs the SB3 class does not take, or whose type contradicts its default."""
    cls = algo_class(algo.name)
    params = _parameters(cls)
    for key, value in algo.kwargs.items():
        if key in MANAGED:
            raise UsageError(f"{source}: algo.{key} is not settable ({MANAGED[key]})")
        if key not in params:
            valid = sorted(k for k in params if k not in MANAGED)
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(
                f"{source}: unknown key 'algo.{key}' for {algo.name}{hint}; valid: {', '.join(valid)}"
            )
        default = params[key].default
        if isinstance(default, float) and isinstance(value, str):
            # YAML 1.1 reads `1e-3` (no dot) as a string; a number is what was meant.
            try:
                value = float(value)
            except ValueError:
                pass
            else:
                setattr(algo, key, value)
        if not _compatible(value, default):
            raise UsageError(
                f"{source}: algo.{key} must be {type(default).__name__} like its default {default!r}, "
                f"got {value!r}"
            )
    if algo.noise_std is not None and algo.name not in ("td3", "ddpg", "sac", "tqc"):
        raise UsageError(f"{source}: algo.noise_std applies to continuous actions (sac, td3, ddpg, tqc)")


def _compatible(value: Any, default: Any) -> bool:
    """A light type check against the default's type; SB3 validates the rest on construction."""
    if default is inspect.Parameter.empty or default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        # train_freq / gradient_steps also take [n, "step"] pairs in SB3.
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, list)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple, int))
    return True


def make_model(
    algo: AlgoConfig,
    env: VecEnv,
    *,
    seed: int,
    replay_buffer_class: type | None,
    replay_buffer_kwargs: dict[str, Any],
    tensorboard_log: str | None,
) -> OffPolicyAlgorithm:
    cls = algo_class(algo.name)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    kwargs = algo.kwargs
    if algo.noise_std is not None and algo.noise_std > 0:
        assert isinstance(env.action_space, spaces.Box)
        n_actions = env.action_space.shape[-1]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), algo.noise_std * np.ones(n_actions))
    try:
        return cls(
            policy,
            env,
            seed=seed,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=0,
            device="cpu",
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{algo.name} rejected the preset's algo settings: {message}") from exc
