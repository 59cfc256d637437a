"""Algorithm names -> stable-baselines3 / sb3-contrib classes (with the precision and target-bound
mixins), activation names -> torch classes, and building a model from the algo section."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import DDPG, DQN, SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from mtgc_cli.bounded_target import BoundedTarget
from mtgc_cli.config import AlgoConfig
from mtgc_cli.errors import UsageError
from mtgc_cli.imitation.bc import BehaviourCloning
from mtgc_cli.precision import Bfloat16Training

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "tqc": TQC,
    "dqn": DQN,
    # Behaviour cloning: an SB3 algorithm whose learn() takes gradient steps on demonstrations,
    # so training, eval and compare run it like the others (mtgc_cli/imitation/bc.py).
    "bc": BehaviourCloning,  # type: ignore[dict-item]
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


_MIXED_CLASSES: dict[tuple[str, tuple[type, ...]], type[OffPolicyAlgorithm]] = {}


def model_class(algo: AlgoConfig) -> type[OffPolicyAlgorithm]:
    """The class that trains ``algo``: the SB3 class, or its subclass with the mixins that
    ``precision`` and ``target_bound`` ask for (their training differs, their saved models do not)."""
    cls = algo_class(algo.name)
    mixins: tuple[type, ...] = ()
    if algo.precision == "bfloat16":
        mixins += (Bfloat16Training,)
    if algo.target_bound == "sparse":
        mixins += (BoundedTarget,)
    if not mixins:
        return cls
    key = (algo.name, mixins)
    if key not in _MIXED_CLASSES:
        # One subclass per combination, named after the algorithm, so SB3's messages still say TQC.
        _MIXED_CLASSES[key] = type(cls.__name__, (*mixins, cls), {})
    return _MIXED_CLASSES[key]


# torch.nn activations by name (a preset can't hold a class). Elementwise ones that need no
# arguments only: Softmax needs a dim, GLU halves the width.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "celu": nn.CELU,
    "mish": nn.Mish,
    "relu6": nn.ReLU6,
    "prelu": nn.PReLU,
    "rrelu": nn.RReLU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "hardtanh": nn.Hardtanh,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "tanhshrink": nn.Tanhshrink,
    "identity": nn.Identity,
}


def activation_class(name: str) -> type[nn.Module] | None:
    """``relu``, ``ReLU``, ``nn.ReLU`` or ``torch.nn.ReLU`` -> ``torch.nn.ReLU``; None if unknown."""
    key = name.strip().removeprefix("torch.").removeprefix("nn.").lower()
    by_class = {cls.__name__.lower(): cls for cls in ACTIVATIONS.values()}
    return ACTIVATIONS.get(key) or by_class.get(key)


def make_model(
    algo: AlgoConfig,
    env: VecEnv,
    *,
    seed: int,
    replay_buffer_class: type | None,
    replay_buffer_kwargs: dict[str, Any],
    tensorboard_log: str | None,
) -> OffPolicyAlgorithm:
    cls = model_class(algo)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    kwargs = algo.kwargs
    if isinstance(kwargs.get("train_freq"), list):
        # SB3 reads only a tuple as (n, unit); YAML can only write a list.
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    policy_kwargs = kwargs.get("policy_kwargs")
    if policy_kwargs is not None:
        # A copy: SB3 writes into the dict it is given (use_sde), and the config's own must stay as
        # the preset says: config.yaml records it, and a compare cell is matched against it.
        policy_kwargs = kwargs["policy_kwargs"] = dict(policy_kwargs)
    if policy_kwargs and isinstance(policy_kwargs.get("activation_fn"), str):
        # A copy: the config keeps the name, which is what config.yaml records. The class is
        # pickled into the saved model, so `mtgc eval` needs no mapping back.
        activation = activation_class(policy_kwargs["activation_fn"])
        kwargs["policy_kwargs"] = {**policy_kwargs, "activation_fn": activation}
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
    except Exception as exc:
        # SB3 builds the buffer and networks here: whatever it raises (a TypeError for an unknown
        # policy argument, a KeyError from a malformed net_arch, a MemoryError for a huge buffer)
        # comes from the preset's values, before anything is written.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{algo.name} rejected the preset's algo settings: {message}") from exc
