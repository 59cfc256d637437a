"""The random states a checkpoint saves: python, numpy, torch, each env's generator, the action
space's, behaviour cloning's minibatch generator."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv


def _env_generators(env: VecEnv) -> list[Any] | None:
    """Each env slot's generator (goals, initial states), or None where the env does not allow it."""
    try:
        return list(env.get_attr("np_random"))
    except Exception:
        return None


def random_states(model: BaseAlgorithm, env: VecEnv, eval_env: VecEnv) -> dict[str, Any]:
    space_rng = getattr(model.action_space, "_np_random", None)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
        "train_envs": _env_generators(env),
        "eval_envs": _env_generators(eval_env),
        "action_space": space_rng,  # random actions before learning_starts
        # Behaviour cloning's minibatch generator: the demonstrations drawn after a resume are
        # the ones an uninterrupted run would have drawn.
        "demo_sampler": getattr(getattr(model, "_sampler", None), "rng", None),
    }


def _set_generators(env: VecEnv, generators: list[Any] | None) -> None:
    if generators is None or len(generators) != env.num_envs:
        return
    for index, generator in enumerate(generators):
        try:
            env.set_attr("np_random", generator, indices=[index])
        except Exception:
            return  # an env that does not allow it starts from its own seed


def set_random_states(states: dict[str, Any], model: BaseAlgorithm, env: VecEnv, eval_env: VecEnv) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    _set_generators(env, states["train_envs"])
    _set_generators(eval_env, states["eval_envs"])
    if states.get("action_space") is not None:
        # gymnasium's Space has no setter for its generator; SB3's load re-seeded it.
        model.action_space._np_random = states["action_space"]  # type: ignore[attr-defined]
    sampler = getattr(model, "_sampler", None)
    if states.get("demo_sampler") is not None and sampler is not None:
        sampler.rng = states["demo_sampler"]
