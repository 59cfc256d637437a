"""Behaviour cloning's policy: inputs standardised with the dataset's statistics, an MLP, and a
deterministic or Gaussian head (see ``bc.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

HEADS = ("deterministic", "gaussian")
TASK_KEY = "task"
# Normalised inputs are clipped here: a feature that was (nearly) constant in the demonstrations
# must not explode when it varies at test time.
INPUT_CLIP = 5.0
LOG_STD_RANGE = (-5.0, 2.0)


class NormalizedInput(BaseFeaturesExtractor):
    """Flatten the observation (Dict keys in order) and standardise it with the dataset's statistics.

    The mean and scale are buffers, so they are saved and loaded with the policy's weights. The task
    one-hot is left as it is (mean 0, scale 1): a rare task's one-hot must not be scaled up.
    """

    def __init__(self, observation_space: spaces.Space) -> None:
        if isinstance(observation_space, spaces.Dict):
            self.keys: list[str] | None = list(observation_space.spaces)
            sizes = [int(np.prod(space.shape)) for space in observation_space.spaces.values()]  # type: ignore[arg-type]
        else:
            self.keys = None
            sizes = [int(np.prod(observation_space.shape))]  # type: ignore[arg-type]
        super().__init__(observation_space, features_dim=int(sum(sizes)))
        self.register_buffer("mean", th.zeros(self.features_dim))
        self.register_buffer("scale", th.ones(self.features_dim))

    def flatten(self, observations: PyTorchObs) -> th.Tensor:
        if self.keys is None:
            assert isinstance(observations, th.Tensor)
            return observations.flatten(1)
        assert isinstance(observations, dict)
        return th.cat([observations[key].flatten(1) for key in self.keys], dim=1)

    def set_statistics(self, observations: dict[str, np.ndarray]) -> None:
        """Mean and scale from (N, ...) training observations; the task one-hot is not scaled."""
        keys = self.keys or ["observation"]
        parts, fixed = [], []
        for key in keys:
            flat = observations[key].reshape(len(observations[key]), -1)
            parts.append(flat)
            fixed.append(np.full(flat.shape[1], key == TASK_KEY))
        data, keep = np.concatenate(parts, axis=1), np.concatenate(fixed)
        mean = np.where(keep, 0.0, data.mean(axis=0))
        # A floor on the scale: a constant feature is centred, not blown up.
        scale = np.where(keep, 1.0, np.maximum(data.std(axis=0), 1e-2))
        self.mean.copy_(th.as_tensor(mean, dtype=th.float32))
        self.scale.copy_(th.as_tensor(scale, dtype=th.float32))

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        normalised = (self.flatten(observations) - self.mean) / self.scale
        return normalised.clamp(-INPUT_CLIP, INPUT_CLIP)


class BCPolicy(BasePolicy):
    """An MLP from the normalised observation to actions in [-1, 1] (the action space rescaled).

    ``deterministic``: ``tanh`` of the output, trained on the squared error. ``gaussian``: a mean and
    a state-dependent log standard deviation, trained on ``-log pi``; it acts with its mean (clipped
    to [-1, 1]) when deterministic, as evaluation asks.
    """

    features_extractor: NormalizedInput

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        head: str = "deterministic",
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class=NormalizedInput,  # type: ignore[arg-type]
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,  # predict() maps [-1, 1] back to the action space's bounds
            normalize_images=False,
        )
        if head not in HEADS:
            raise ValueError(f"head '{head}' is not one of {', '.join(HEADS)}")
        self.head = head
        self.net_arch = [256, 256] if net_arch is None else list(net_arch)
        self.activation_fn = activation_fn
        self.features_extractor = self.make_features_extractor()  # type: ignore[assignment]
        action_dim = int(np.prod(action_space.shape))
        self.body = nn.Sequential(
            *create_mlp(self.features_extractor.features_dim, -1, self.net_arch, activation_fn)
        )
        width = self.net_arch[-1] if self.net_arch else self.features_extractor.features_dim
        self.action_mean = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim) if head == "gaussian" else None
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(head=self.head, net_arch=self.net_arch, activation_fn=self.activation_fn)
        return data

    def _outputs(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor | None]:
        latent = self.body(self.extract_features(obs, self.features_extractor))
        mean = self.action_mean(latent)
        if self.log_std is None:
            return th.tanh(mean), None
        return mean, self.log_std(latent).clamp(*LOG_STD_RANGE)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        mean, log_std = self._outputs(observation)
        if log_std is None or deterministic:
            return mean.clamp(-1.0, 1.0)
        return (mean + log_std.exp() * th.randn_like(mean)).clamp(-1.0, 1.0)

    def loss(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Mean over the batch of the squared error or of ``-log pi(a | s)`` (actions in [-1, 1])."""
        mean, log_std = self._outputs(obs)
        if log_std is None:
            return (mean - actions).pow(2).sum(dim=1).mean()
        return -th.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(dim=1).mean()

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic)
