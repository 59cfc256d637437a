"""``algo.precision: bfloat16``: the networks' matrix products in bfloat16 during gradient steps.

What is lowered, and what is not:

- Each network (an outermost ``nn.Sequential``, or an ``nn.Linear`` outside one: the actor's
  trunk, its mean and log-std heads, every critic or quantile head, DQN's Q-network) runs its
  forward pass under its own CPU autocast block and hands a float32 tensor back. Everything
  between the networks stays float32: the squashed Gaussian and its log-probability, the
  entropy temperature, the targets, the losses and the optimiser.
- Weights, gradients and optimiser state are float32; collection, evaluation and the saved
  model are plain float32 (the hooks act only inside ``train``).

Why per forward pass and not one autocast block around ``train``: autocast caches one bfloat16
copy of each weight per block, and the optimiser's in-place updates do not refresh it, so a block
around several gradient steps (or around a critic update and the actor loss after it) computes
with stale weights. Leaving an outermost block clears the cache, so each forward pass here casts
the weights as they are now. And why the float32 outputs: in bfloat16 ``tanh(u)`` rounds to
exactly 1 from |u| of about 3.5, where SAC's ``log(1 - tanh(u)^2 + 1e-6)`` then saturates at
-13.8 (float32: -6.6 at u = 4) and its gradient vanishes; that is the log-probability the entropy
temperature is tuned on.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

# True while ``train`` runs: the hooks lower the networks only then. A context variable rather
# than a flag on the model, so that the module-level hooks (picklable, copied with the modules)
# need no reference to it.
_IN_GRADIENT_STEPS: contextvars.ContextVar[bool] = contextvars.ContextVar("mtgc_bf16", default=False)
# The autocast blocks the pre-hooks opened, closed by the matching forward hooks. Networks are
# never nested (only outermost ones are hooked), but a stack costs nothing and stays correct.
_OPEN: list[torch.autocast] = []
_HOOKED = "_mtgc_bfloat16_hooked"


def _enter(module: nn.Module, args: Any) -> None:
    if _IN_GRADIENT_STEPS.get():
        block = torch.autocast("cpu", dtype=torch.bfloat16)
        block.__enter__()
        _OPEN.append(block)


def _exit(module: nn.Module, args: Any, output: Any) -> Any:
    if not _IN_GRADIENT_STEPS.get() or not _OPEN:
        return None
    _OPEN.pop().__exit__(None, None, None)
    return output.float() if isinstance(output, torch.Tensor) else output


def networks(root: nn.Module) -> list[nn.Module]:
    """The outermost ``nn.Sequential`` modules of ``root``, and its ``nn.Linear`` outside any."""
    found: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, (nn.Sequential, nn.Linear)):
                found.append(child)
            else:
                walk(child)

    walk(root)
    return found


def lower_networks(root: nn.Module) -> int:
    """Hook every network of ``root`` to run in bfloat16 during gradient steps; how many hooked."""
    count = 0
    for module in networks(root):
        if getattr(module, _HOOKED, False):
            continue
        module.register_forward_pre_hook(_enter)
        module.register_forward_hook(_exit, always_call=True)
        setattr(module, _HOOKED, True)
        count += 1
    return count


@contextmanager
def bfloat16_gradient_steps() -> Iterator[None]:
    """Inside: the hooked networks compute in bfloat16 (SB3's ``train``)."""
    token = _IN_GRADIENT_STEPS.set(True)
    try:
        yield
    finally:
        _IN_GRADIENT_STEPS.reset(token)
        while _OPEN:  # a forward pass that raised before its forward hook ran
            _OPEN.pop().__exit__(None, None, None)


class Bfloat16Training:
    """Mixin over an SB3 off-policy class: its gradient steps compute the networks in bfloat16.

    On this project's CPU (AMX-BF16) a FetchPush gradient step of three 256-unit layers at batch
    512 costs about 0.6-0.8x the float32 one (benchmarks/gradient_step_cost.py, one step per call
    as training takes them). The algorithm is SB3's, step for step, at lower precision in the
    matrix products only; the saved weights are ordinary float32 ones that the plain class loads.
    """

    policy: nn.Module

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        # Every network of the policy, target networks included (built with it).
        lower_networks(self.policy)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        with bfloat16_gradient_steps():
            super().train(gradient_steps, batch_size)  # type: ignore[misc]
