"""``algo.target_bound: sparse``: the target networks' values clipped to what the returns can be.

With a sparse reward in [-1, 0] per decision, every discounted return lies in
``[-1 / (1 - gamma), 0]``; a target Q outside that range is an estimation error that the
bootstrap would otherwise feed back into the critic. OpenAI baselines' HER clips its targets to
this range (``clip_return``), and REDQ+HER's bounded target Q ("BQ", Hiraoka 2023) is the same
idea. Only the target networks' outputs are clipped, during gradient steps; the critic itself,
its loss and the saved model are SB3's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

BOUNDS = ("none", "sparse")


def sparse_bounds(gamma: float) -> tuple[float, float]:
    """The range of a discounted sum of rewards in [-1, 0]."""
    return -1.0 / (1.0 - gamma), 0.0


def _clamp(output: Any, low: float, high: float) -> Any:
    if isinstance(output, torch.Tensor):
        return output.clamp(low, high)
    if isinstance(output, tuple):
        return tuple(_clamp(item, low, high) for item in output)
    return output


def target_network(policy: nn.Module) -> nn.Module | None:
    """The target critic (SAC, TD3, DDPG, TQC) or target Q-network (DQN) of an SB3 policy."""
    for name in ("critic_target", "q_net_target"):
        module = getattr(policy, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


class BoundedTarget:
    """Mixin over an SB3 off-policy class: its target network's values are clipped to the sparse
    reward's return range (``sparse_bounds(gamma)``)."""

    policy: nn.Module
    gamma: float

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        target = target_network(self.policy)
        if target is None:
            raise ValueError(f"{type(self).__name__} has no target network to bound")
        low, high = sparse_bounds(self.gamma)
        # A module-level function would need the bounds; a closure is fine here: the hook lives as
        # long as the model, and SB3 pickles no modules (it saves state dicts).
        target.register_forward_hook(lambda _m, _i, out: _clamp(out, low, high))
